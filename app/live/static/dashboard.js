// The operators' live page: no framework, no build step, nothing from the network but
// this service. Stats arrive as Server-Sent Events read through fetch() (EventSource
// cannot send the Authorization header); controls are PATCH/POST calls, each confirmed.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: "", eventId: "", abort: null, history: [], last: null, items: {}, campaignId: "", campaignTimer: null };
const HISTORY = 300; // points on the chart (five minutes at one a second)
// The campaign report is a Postgres query over all its orders, not a stream: re-read it
// now and then rather than every second.
const CAMPAIGN_REFRESH_MS = 15000;
const PHASE_NAMES = { warm_up: "warm-up", peak: "peak", return: "return" };
const TARGET_NAMES = { gmv: "GMV", orders: "Orders", new_buyers: "New buyers" };

function money(value) { return Number(value).toLocaleString(undefined, { minimumFractionDigits: 2 }); }
function when(iso) { return iso ? new Date(iso).toLocaleTimeString() : "–"; }

function setParam(name, value) {
  const params = new URLSearchParams(location.search);
  params.set(name, value);
  history.replaceState(null, "", `?${params}`);
}

function say(text, error = false) {
  const result = $("result");
  result.textContent = text;
  result.className = error ? "error" : "";
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`${response.status} ${data.code || ""}: ${data.detail || response.statusText}`);
  }
  return data;
}

async function loadEvents() {
  const events = await api("GET", "/api/v1/events?limit=200");
  const select = $("event");
  select.innerHTML = "";
  const order = { live: 0, upcoming: 1, ended: 2 };
  events.sort((a, b) => order[a.state] - order[b.state] || b.id - a.id);
  for (const event of events) {
    const option = document.createElement("option");
    option.value = event.id;
    option.textContent = `#${event.id} ${event.name} (${event.state})`;
    select.appendChild(option);
  }
  select.disabled = false;
  const wanted = new URLSearchParams(location.search).get("event");
  if (wanted && events.some((e) => String(e.id) === wanted)) select.value = wanted;
  if (select.value) watch(select.value);
}

function render(stats) {
  state.last = stats;
  $("state").textContent = stats.paused ? "paused" : stats.state;
  $("participants").textContent = stats.participants.toLocaleString();
  $("attempts").textContent = stats.attempts.toLocaleString();
  $("accepted_orders").textContent = stats.accepted_orders.toLocaleString();
  $("accepted_units").textContent = stats.accepted_units.toLocaleString();
  $("member_units").textContent = stats.member_units.toLocaleString();
  renderMembers(stats.members);
  $("paid_orders").textContent = stats.paid_orders.toLocaleString();
  $("gmv").textContent = money(stats.gmv);
  $("overdue_shipments").textContent = stats.overdue_shipments.toLocaleString();
  $("conversion").textContent = `${(stats.conversion * 100).toFixed(1)}%`;
  $("ends").textContent = when(stats.ends_at);
  renderReminders(stats.reminders, stats.starts_at);
  renderReturns(stats.returns_by_reason, stats.refund_rate);

  const warnings = $("warnings");
  warnings.innerHTML = "";
  for (const item of stats.items) {
    if (item.low_stock && item.remaining > 0) {
      const div = document.createElement("div");
      div.className = "warn";
      div.dataset.testid = "low-stock";
      div.textContent = `Low stock: ${item.name} (#${item.id}) has ${item.remaining} left, below ${item.low_stock_threshold}.`;
      warnings.appendChild(div);
    }
  }
  renderItems(stats.items);
  renderAccess(stats.access);
  state.history.push({ at: Date.parse(stats.at), accepted: stats.accepted_units, paid: stats.paid_units });
  if (state.history.length > HISTORY) state.history.shift();
  drawChart();
}

// Reminders (预约): "12,345 waiting for 10:00", then how the delivery went.
function renderMembers(members) {
  const points = members.points;
  $("points-net").textContent = points.net.toLocaleString();
  $("points-issued").textContent =
    `${points.earned.toLocaleString()} earned · ${points.reversed.toLocaleString()} taken back`;
  $("invites-rewarded").textContent = members.invites.rewarded_pairs.toLocaleString();
  $("invites-accepted").textContent =
    `${members.invites.accepted.toLocaleString()} accepted · ` +
    `${members.invites.reward_failed.toLocaleString()} failed`;
}

// Returns: the refund rate (refunded / ever paid; "–" before a payment), and the returns
// asked for per reason, the reasons with none left out ("none" when there is none).
function renderReturns(byReason, refundRate) {
  $("refund-rate").textContent = refundRate === null ? "–" : `${(refundRate * 100).toFixed(1)}%`;
  const asked = Object.entries(byReason).filter(([, n]) => n > 0);
  $("returns-by-reason").textContent = asked.length
    ? asked.map(([reason, n]) => `${reason.replaceAll("_", " ")} ${n.toLocaleString()}`).join(" · ")
    : "no returns";
}

function renderReminders(reminders, startsAt) {
  const start = new Date(startsAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  $("reminders-waiting").textContent = `${reminders.subscribed.toLocaleString()} waiting for ${start}`;
  $("reminders-delivery").textContent =
    `${reminders.sent.toLocaleString()} sent · ${reminders.pending.toLocaleString()} pending · ` +
    `${reminders.failed.toLocaleString()} failed`;
}

// A queue or draw sale's numbers (hidden for an open sale).
const ACCESS_FIGURES = [
  ["queue_joined", "In the queue"],
  ["queue_waiting", "Waiting"],
  ["queue_admitted", "Admitted"],
  ["draw_registrants", "Registrants"],
  ["draw_winners", "Winners"],
  ["passes_used", "Passes used"],
];

function renderAccess(access) {
  const panel = $("access");
  panel.hidden = !access;
  if (!access) return;
  $("access-mode").textContent = access.mode;
  const tiles = $("access-tiles");
  tiles.innerHTML = "";
  for (const [key, label] of ACCESS_FIGURES) {
    if (access[key] === null || access[key] === undefined) continue;
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.innerHTML = '<span class="label"></span><span></span>';
    tile.children[0].textContent = label;
    tile.children[1].textContent = access[key].toLocaleString();
    tile.children[1].dataset.testid = `access-${key.replaceAll("_", "-")}`;
    tiles.appendChild(tile);
  }
}

function renderItems(items) {
  const body = $("items").querySelector("tbody");
  for (const item of items) {
    let row = body.querySelector(`tr[data-item="${item.id}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.item = item.id;
      row.innerHTML = `
        <td class="name"></td><td class="state"></td><td class="stock"></td>
        <td class="accepted"></td><td class="paid"></td><td class="limit"></td>
        <td class="price"></td><td class="soldout"></td>
        <td class="change">
          <input class="add_stock" type="number" min="1" placeholder="+stock" title="units to add from the SKU">
          <input class="per_user_limit" type="number" min="1" placeholder="limit" title="per-user limit">
          <input class="seckill_price" type="text" inputmode="decimal" placeholder="price" title="seckill price">
          <input class="low_stock_threshold" type="number" min="0" placeholder="warn <" title="low-stock threshold">
          <button type="button" class="apply">Apply</button>
        </td>`;
      row.querySelector(".apply").addEventListener("click", () => changeItem(item.id, row));
      body.appendChild(row);
    }
    const known = state.items[item.id] || {};
    row.className = item.remaining <= 0 ? "sold_out" : item.low_stock ? "low" : "";
    row.querySelector(".name").textContent = `#${item.id} ${item.name}`;
    row.querySelector(".state").innerHTML = item.state + (item.low_stock && item.remaining > 0 ? '<span class="badge">LOW</span>' : "");
    row.querySelector(".stock").textContent = `${item.remaining} / ${item.allocated}`;
    row.querySelector(".accepted").textContent = item.accepted_units;
    row.querySelector(".paid").textContent = item.paid_units;
    row.querySelector(".limit").textContent = known.per_user_limit ?? "–";
    row.querySelector(".price").textContent = known.seckill_price ?? "–";
    row.querySelector(".soldout").textContent = when(item.sold_out_at);
  }
}

async function loadItemTerms(eventId) {
  const event = await api("GET", `/api/v1/events/${eventId}`);
  state.items = {};
  for (const item of event.items) state.items[item.id] = item;
}

function drawChart() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const points = state.history;
  if (points.length < 2) return;
  const top = Math.max(1, ...points.map((p) => p.accepted));
  const t0 = points[0].at;
  const span = Math.max(1, points[points.length - 1].at - t0);
  const x = (p) => 40 + ((p.at - t0) / span) * (width - 50);
  const y = (v) => height - 20 - (v / top) * (height - 35);
  ctx.strokeStyle = "#c8cfdc";
  ctx.fillStyle = "#5b6478";
  ctx.font = "11px system-ui";
  ctx.beginPath(); ctx.moveTo(40, 10); ctx.lineTo(40, height - 20); ctx.lineTo(width - 10, height - 20); ctx.stroke();
  ctx.fillText(String(top), 4, 16);
  ctx.fillText("0", 28, height - 22);
  for (const [key, color] of [["accepted", "#2f6fde"], ["paid", "#1f9d55"]]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(x(p), y(p[key])) : ctx.moveTo(x(p), y(p[key]))));
    ctx.stroke();
  }
}

function setLink(text, live) {
  $("link").textContent = text;
  $("link").className = live ? "pill live" : "pill";
}

async function watch(eventId) {
  if (state.abort) state.abort.abort();
  state.eventId = String(eventId);
  state.history = [];
  $("items").querySelector("tbody").innerHTML = "";
  setParam("event", eventId);
  const abort = new AbortController();
  state.abort = abort;
  try { await loadItemTerms(eventId); } catch (error) { say(error.message, true); }
  while (!abort.signal.aborted) {
    // The server ends a stream when the token expires (or after its maximum duration):
    // reconnect, unless the token is no longer accepted; a full server says when to retry.
    let wait = 2000;
    try {
      const response = await fetch(`/api/v1/admin/events/${eventId}/stats/stream`, {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
        signal: abort.signal,
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        if (response.status === 401) {
          setLink("token expired", false);
          say(`stream: ${problem.detail || "token refused"} Type a new operator token and connect again.`, true);
          return;
        }
        const retryAfter = Number(response.headers.get("Retry-After"));
        if (retryAfter > 0) wait = retryAfter * 1000;
        throw new Error(`${response.status} ${problem.code || ""}: ${problem.detail || ""}`);
      }
      setLink("live", true);
      await readEvents(response.body, (name, data) => { if (name === "stats") render(JSON.parse(data)); });
    } catch (error) {
      if (abort.signal.aborted) return;
      say(`stream: ${error.message}; reconnecting`, true);
    }
    setLink("reconnecting", false);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

async function readEvents(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      onEvent(name, data.join("\n"));
    }
  }
}

async function act(question, method, path, body) {
  if (!confirm(question)) { say("cancelled"); return; }
  try {
    await api(method, path, body);
    say(`done: ${question}`);
    await loadItemTerms(state.eventId);
  } catch (error) {
    say(error.message, true);
  }
}

function changeItem(itemId, row) {
  const body = {};
  for (const field of ["add_stock", "per_user_limit", "low_stock_threshold"]) {
    const input = row.querySelector(`.${field}`);
    if (input.value !== "") body[field] = Number(input.value);
  }
  const price = row.querySelector(".seckill_price").value.trim();
  if (price) body.seckill_price = price;
  if (!Object.keys(body).length) { say("nothing to change", true); return; }
  const words = Object.entries(body).map(([k, v]) => `${k} = ${v}`).join(", ");
  act(`Change item #${itemId}: ${words}?`, "PATCH", `/api/v1/admin/items/${itemId}`, body).then(() => {
    for (const input of row.querySelectorAll("input")) input.value = "";
  });
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function phaseNow(report) {
  if (report.current_phase) return PHASE_NAMES[report.current_phase];
  const windows = [report.phases.warm_up, report.phases.peak, report.phases.return].filter(Boolean);
  const now = Date.parse(report.generated_at);
  if (now < Date.parse(windows[0].starts_at)) return "not started";
  if (now >= Date.parse(windows[windows.length - 1].ends_at)) return "ended";
  return "between phases";
}

function renderCampaign(report) {
  $("campaign-panel").hidden = false;
  $("campaign-name").textContent = `#${report.campaign_id} ${report.name} (${report.status})`;
  $("campaign-phase").textContent = phaseNow(report);
  $("campaign-gmv").textContent = money(report.gmv);
  $("campaign-orders").textContent = report.orders.toLocaleString();
  $("campaign-paid").textContent = report.paid_orders.toLocaleString();
  $("campaign-new-buyers").textContent = report.new_buyers.toLocaleString();
  $("campaign-phases").textContent = Object.entries(PHASE_NAMES)
    .filter(([key]) => report.phases[key])
    .map(([key, name]) => `${name} ${new Date(report.phases[key].starts_at).toLocaleString()} – ${new Date(report.phases[key].ends_at).toLocaleString()}`)
    .join(" · ");

  const targets = $("campaign-targets").tBodies[0];
  targets.innerHTML = "";
  for (const [key, name] of Object.entries(TARGET_NAMES)) {
    const target = report.targets[key];
    if (!target) continue;
    const row = targets.insertRow();
    row.dataset.target = key;
    const shown = key === "gmv" ? money : (v) => Number(v).toLocaleString();
    cell(row, name);
    cell(row, `${shown(target.actual)} / ${shown(target.target)}`, "actual");
    const bar = cell(row, "", "completion");
    const progress = document.createElement("progress");
    progress.className = "completion";
    progress.max = 1;
    progress.value = Math.min(1, target.completion ?? 0);
    bar.appendChild(progress);
    const percent = document.createElement("span");
    percent.className = "percent";
    percent.textContent = target.completion === null ? "–" : `${(target.completion * 100).toFixed(1)}%`;
    bar.appendChild(percent);
    if (target.completion >= 1) row.className = "reached";
  }
  if (!targets.rows.length) cell(targets.insertRow(), "no targets").colSpan = 3;

  const channels = $("campaign-channels").tBodies[0];
  channels.innerHTML = "";
  for (const channel of report.by_channel) {
    const row = channels.insertRow();
    row.dataset.channel = channel.channel ?? "";
    cell(row, channel.channel ?? "none", channel.channel === null ? "name none" : "name");
    cell(row, channel.orders.toLocaleString(), "orders");
    cell(row, channel.paid_orders.toLocaleString(), "paid");
    cell(row, money(channel.gmv), "gmv");
    cell(row, channel.cost === null ? "–" : money(channel.cost), "cost");
    cell(row, channel.roi === null ? "–" : channel.roi.toFixed(2), "roi");
  }
  if (!channels.rows.length) cell(channels.insertRow(), "no orders, no channels").colSpan = 6;
  $("campaign-updated").textContent = `report of ${new Date(report.generated_at).toLocaleTimeString()}, refreshed every ${CAMPAIGN_REFRESH_MS / 1000} s`;
}

async function refreshCampaign(campaignId) {
  try {
    const report = await api("GET", `/api/v1/admin/campaigns/${campaignId}/report`);
    if (state.campaignId === String(campaignId)) renderCampaign(report);
  } catch (error) {
    say(`campaign #${campaignId}: ${error.message}`, true);
  }
}

function showCampaign(campaignId) {
  clearInterval(state.campaignTimer);
  state.campaignId = String(campaignId);
  $("campaign-panel").hidden = true;
  setParam("campaign", campaignId);
  refreshCampaign(campaignId);
  state.campaignTimer = setInterval(() => refreshCampaign(campaignId), CAMPAIGN_REFRESH_MS);
}

// The campaigns to choose from, where the service lists them; typing an id works anyway.
async function loadCampaigns() {
  try {
    const found = await api("GET", "/api/v1/admin/campaigns?limit=100");
    const list = $("campaigns");
    list.innerHTML = "";
    for (const campaign of Array.isArray(found) ? found : found.items || []) {
      const option = document.createElement("option");
      option.value = campaign.id;
      option.label = `${campaign.name} (${campaign.status})`;
      list.appendChild(option);
    }
  } catch (error) {
    // No list: the id is typed.
  }
}

$("connect").addEventListener("submit", async (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("seckill-token", state.token);
  const wanted = new URLSearchParams(location.search).get("campaign");
  if (wanted) { $("campaign").value = wanted; showCampaign(wanted); }
  loadCampaigns();
  try { await loadEvents(); say("connected"); } catch (error) { say(error.message, true); }
});
$("campaign-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!state.token) { say("type the operator token and connect first", true); return; }
  const id = $("campaign").value.trim();
  if (/^[1-9][0-9]*$/.test(id)) showCampaign(id); else say("a campaign id is a whole number", true);
});
// A lottery's numbers (draws, wins per prize, units left in Redis, approvals waiting),
// re-read every LOTTERY_REFRESH_MS.
const LOTTERY_REFRESH_MS = 2000;
let lotteryTimer = null;
let lotteryId = "";

function renderLottery(stats) {
  $("lottery-panel").hidden = false;
  $("lottery-name").textContent = `#${stats.lottery_id} ${stats.name}`;
  $("lottery-draws").textContent = stats.draws.toLocaleString();
  $("lottery-drawers").textContent = stats.drawers.toLocaleString();
  $("lottery-pending").textContent = stats.pending_approvals.toLocaleString();
  $("lottery-state").textContent = stats.frozen ? "frozen (recovering)" : "drawing";
  const prizes = $("lottery-prizes").tBodies[0];
  prizes.innerHTML = "";
  for (const prize of stats.prizes) {
    const row = prizes.insertRow();
    row.dataset.prize = prize.id;
    cell(row, prize.name, "name");
    cell(row, prize.kind, "kind");
    cell(row, `${prize.won.toLocaleString()} / ${prize.quantity.toLocaleString()}`, "won");
    cell(row, prize.remaining === null ? "–" : prize.remaining.toLocaleString(), "remaining");
    cell(row, prize.paid.toLocaleString(), "paid");
    cell(row, prize.pending_approval.toLocaleString(), "pending");
    if (prize.remaining === 0) row.className = "reached";
  }
  $("lottery-updated").textContent = `read ${new Date().toLocaleTimeString()}, every ${LOTTERY_REFRESH_MS / 1000} s`;
}

async function refreshLottery(id) {
  try {
    const stats = await api("GET", `/api/v1/admin/lotteries/${id}/stats`);
    if (lotteryId === String(id)) renderLottery(stats);
  } catch (error) {
    say(`lottery #${id}: ${error.message}`, true);
  }
}

function showLottery(id) {
  clearInterval(lotteryTimer);
  lotteryId = String(id);
  $("lottery-panel").hidden = true;
  refreshLottery(id);
  lotteryTimer = setInterval(() => refreshLottery(id), LOTTERY_REFRESH_MS);
}

$("lottery-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!state.token) { say("type the operator token and connect first", true); return; }
  const id = $("lottery").value.trim();
  if (/^[1-9][0-9]*$/.test(id)) showLottery(id); else say("a lottery id is a whole number", true);
});
$("event").addEventListener("change", (e) => { if (e.target.value) watch(e.target.value); });
$("pause").addEventListener("click", () =>
  act(`Pause event #${state.eventId}?`, "POST", `/api/v1/admin/events/${state.eventId}/pause`));
$("resume").addEventListener("click", () =>
  act(`Resume event #${state.eventId}?`, "POST", `/api/v1/admin/events/${state.eventId}/resume`));
$("end").addEventListener("click", () =>
  act(`End event #${state.eventId} NOW? Nobody can buy afterwards.`, "POST", `/api/v1/admin/events/${state.eventId}/end`));
$("extend").addEventListener("click", () => {
  if (!state.last) return;
  const minutes = Number($("extend-minutes").value || 0);
  const ends = new Date(Date.parse(state.last.ends_at) + minutes * 60000).toISOString();
  act(`Move the end of event #${state.eventId} to ${ends}?`, "PATCH", `/api/v1/admin/events/${state.eventId}`, { ends_at: ends });
});

const saved = sessionStorage.getItem("seckill-token");
if (saved) { $("token").value = saved; $("connect").requestSubmit(); }
