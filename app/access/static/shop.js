// The reference storefront for one flash-sale event (docs/CONTRACT.md). No framework, no
// build step, nothing from the network but this service: copy what you need.
//
// What a fair storefront does, in order:
//  1. Count down by the SERVER's clock (GET /api/v1/time, the offset measured once):
//     a shopper's clock that runs fast must not make the page look open early.
//  2. By the event's access mode:
//     open  - Buy from the start.
//     queue - join the waiting room (POST .../queue), then poll your place every second
//             (GET .../queue) until you are admitted with a pass, or the queue closes.
//     draw  - register in the window (POST .../registrations), then read your result
//             (GET .../registrations/me): a winner gets a pass valid from the start.
//     Joining and registering may ask for a proof of work: solved here, in the page.
//  3. Buy with the pass (X-Seckill-Pass), follow the order from `queued` to
//     `pending_payment` (GET /api/v1/orders/{id}), pay (POST .../pay).
// Before the start, "Remind me" reserves a reminder (预约, POST .../reminders: the
// shop's messaging provider tells the shopper a few minutes ahead), and the live board
// (GET .../live) says how many are waiting.
// Every refusal is an RFC 9457 problem: its `detail` is written for the shopper, so it
// is shown as it is (sold out, over the limit, not admitted, ...).
"use strict";

const $ = (id) => document.getElementById(id);

const EVENT_POLL_MS = 2000; // items' remaining stock and state
const QUEUE_POLL_MS = 1000; // the waiting room: position, admission, close
const DRAW_POLL_MS = 2000; // the draw: registrants, result, revealed seed
const ORDER_POLL_MS = 1000; // an order until it leaves `queued`
const TICK_MS = 250; // the countdown
const POW_BATCH = 256; // hashes in flight at once while solving a challenge

const shop = {
  eventId: Number(location.pathname.split("/").pop()),
  token: "",
  user: null, // the token's claims: {sub, member}
  offsetMs: 0, // server clock minus ours
  event: null, // GET /api/v1/events/{id}
  pass: null, // X-Seckill-Pass, once admitted or drawn
  queueState: null, // waiting | admitted | closed, once joined
  queueClosed: null, // why the waiting room closed, if it did
  queueTimer: null,
  drawTimer: null,
  orderTimers: new Set(), // orders followed until they leave `queued`
  reminded: false, // this shopper asked for a reminder on this page
};

// -- talking to the API -----------------------------------------------------------------

class Problem extends Error {
  // A refused request: `detail` is for the shopper, `code` for the page.
  constructor(status, body) {
    super(body.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "";
  }
}

async function api(method, path, { headers = {}, body } = {}) {
  const sent = { ...headers };
  if (shop.token) sent.Authorization = `Bearer ${shop.token}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

function say(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "message error" : "message";
}

// Show a refusal to the shopper; anything else (the network, the browser) too, plainly.
function sayProblem(error) {
  say(error instanceof Problem ? error.message : `Something went wrong: ${error.message}`, true);
}

// -- the server's clock -----------------------------------------------------------------

async function syncClock() {
  // Half the round trip is the best guess of when the server read its clock.
  const sent = Date.now();
  const { now } = await api("GET", "/api/v1/time");
  const received = Date.now();
  shop.offsetMs = Date.parse(now) - (sent + received) / 2;
}

const serverNow = () => Date.now() + shop.offsetMs;

function duration(ms) {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(seconds / 86400);
  const clock = [Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
  return days > 0 ? `${days}d ${clock}` : clock;
}

const at = (iso) => new Date(iso).toLocaleString();

// The moment this shopper may buy: members may open early, in an open sale (a pass is
// valid from the start).
function opensForMe() {
  const { event, user } = shop;
  const early = event.access.mode === "open" && user?.member;
  return Date.parse(event.starts_at) - (early ? event.member_early_access_seconds * 1000 : 0);
}

// Why nothing can be bought any more, or null. Stock comes back when an unpaid order
// times out, so a sold-out sale may reopen; a closed waiting room does not.
function closedReason() {
  const event = shop.event;
  if (shop.queueClosed) return shop.queueClosed;
  if (event.state === "ended") return "This sale has ended.";
  if (event.items.every((item) => item.state === "sold_out")) return "Sold out.";
  return null;
}

function tick() {
  if (!shop.event) return;
  const now = serverNow();
  const ends = Date.parse(shop.event.ends_at);
  const opens = opensForMe();
  $("countdown").textContent =
    now < opens ? `Starts in ${duration(opens - now)}` : now < ends ? "On sale now" : "Sale ended";
  updateButtons();
}

// -- the signed-in shopper --------------------------------------------------------------

// The token's claims, read (not verified: the server does that) for the user id the proof
// of work is bound to, and for members' early access.
function claimsOf(token) {
  const part = token.split(".")[1] || "";
  const bytes = Uint8Array.from(atob(part.replace(/-/g, "+").replace(/_/g, "/")), (c) =>
    c.charCodeAt(0),
  );
  const claims = JSON.parse(new TextDecoder().decode(bytes)); // UTF-8: any user id
  if (typeof claims.sub !== "string") throw new Error("no user id (sub) in it");
  return claims;
}

// Another shopper signs in on this page: nothing of the previous one's stays.
function forgetShopper() {
  clearInterval(shop.queueTimer);
  shop.orderTimers.forEach(clearInterval);
  shop.orderTimers.clear();
  Object.assign(shop, {
    pass: null,
    queueState: null,
    queueClosed: null,
    queueTimer: null,
    reminded: false,
  });
  $("queue-state").textContent = "not joined";
  $("queue-position").textContent = $("queue-wait").textContent = "–";
  $("draw-status").textContent = "not registered";
  delete $("draw-status").dataset.status;
  $("orders").replaceChildren();
}

async function signIn(token) {
  try {
    shop.user = claimsOf(token);
  } catch (error) {
    say(`That is not a shopper token: ${error.message}`, true);
    return;
  }
  forgetShopper();
  shop.token = token;
  $("who").textContent = `signed in as ${shop.user.sub}`;
  $("who").className = "pill in";
  say("");
  // Where this shopper already stands: a reload keeps their place and pass.
  const mode = shop.event.access.mode;
  if (mode === "queue") await resumeQueue();
  if (mode === "draw") await refreshDraw();
  updateButtons();
}

// -- the event and its items ------------------------------------------------------------

async function loadEvent() {
  shop.event = await api("GET", `/api/v1/events/${shop.eventId}`);
  renderEvent();
}

function renderEvent() {
  const event = shop.event;
  document.title = `${event.name} · seckill shop`;
  $("event-name").textContent = event.name;
  $("window").textContent = `${at(event.starts_at)} – ${at(event.ends_at)}`;
  $("queue-panel").hidden = event.access.mode !== "queue";
  $("draw-panel").hidden = event.access.mode !== "draw";
  if (event.access.mode === "queue") {
    $("queue-window").textContent = `The waiting room opens at ${at(event.access.opens_at)}.`;
  }
  if (event.access.mode === "draw") {
    const { registration_starts_at: opens, registration_ends_at: closes } = event.access;
    $("registration-window").textContent = `Registration: ${at(opens)} – ${at(closes)}.`;
  }
  const body = $("items").querySelector("tbody");
  for (const item of event.items) {
    let row = body.querySelector(`tr[data-item="${item.id}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.item = item.id;
      row.dataset.testid = "item";
      row.innerHTML = `
        <td class="name"></td><td class="price"></td><td class="remaining"></td>
        <td class="state"></td>
        <td><button type="button" class="buy" data-testid="buy" disabled>Buy</button></td>`;
      row.querySelector(".buy").addEventListener("click", () => buy(item.id));
      body.appendChild(row);
    }
    row.className = item.state;
    row.querySelector(".name").textContent = item.name;
    const price = row.querySelector(".price");
    price.textContent = item.seckill_price;
    const list = document.createElement("span");
    list.className = "list-price";
    list.textContent = item.list_price;
    price.appendChild(list);
    row.querySelector(".remaining").textContent = item.remaining;
    row.querySelector(".state").textContent = item.state.replace("_", " ");
  }
  tick();
}

// "12,345 waiting for 10:00": shoppers who reserved a reminder of this sale.
async function loadBoard() {
  const board = await api("GET", `/api/v1/events/${shop.eventId}/live`);
  const start = new Date(board.starts_at).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
  });
  $("waiting").textContent = `${board.waiting.toLocaleString()} waiting for ${start}`;
}

// Repeat-safe on the server: a second click would change nothing, the button just says so.
async function remind() {
  try {
    await api("POST", `/api/v1/events/${shop.eventId}/reminders`);
    shop.reminded = true;
    say("We will remind you a few minutes before the start.");
    await loadBoard();
  } catch (error) {
    sayProblem(error);
  }
  updateButtons();
}

// Buy is offered when the sale is open for this shopper and, on a queue or draw event,
// when they hold a pass. The server decides anyway: this only spares useless clicks.
function updateButtons() {
  const event = shop.event;
  const mode = event.access.mode;
  const closed = closedReason();
  $("closed").textContent = closed ?? "";
  $("closed").hidden = closed === null;
  const open = shop.token && closed === null && serverNow() >= opensForMe();
  const admitted = mode === "open" || shop.pass !== null;
  for (const item of event.items) {
    const button = document.querySelector(`tr[data-item="${item.id}"] .buy`);
    const buyable = item.state !== "sold_out" && item.state !== "ended";
    button.disabled = !(open && admitted && buyable);
  }
  const queueOpens = mode === "queue" ? Date.parse(event.access.opens_at) : 0;
  $("join").disabled =
    !shop.token || closed !== null || shop.queueState !== null || serverNow() < queueOpens;
  $("register").disabled = !shop.token || !registrationOpen() || drawStatus() !== null;
  $("remind").disabled =
    !shop.token || shop.reminded || serverNow() >= Date.parse(event.starts_at);
}

// -- proof of work ----------------------------------------------------------------------

function leadingZeroBits(bytes) {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24; // clz32 counts over 32 bits, a byte is 8
  }
  return bits;
}

// A nonce with SHA-256("{challenge}:{user id}:{nonce}") starting with `bits` zero bits.
// crypto.subtle needs a secure context: https, or http on localhost / 127.0.0.1.
async function solve(challenge, bits) {
  if (!crypto.subtle) throw new Error("the proof of work needs this page served over https");
  const encoder = new TextEncoder();
  const prefix = `${challenge}:${shop.user.sub}:`;
  for (let first = 0; ; first += POW_BATCH) {
    const nonces = Array.from({ length: POW_BATCH }, (_, i) => String(first + i));
    const digests = await Promise.all(
      nonces.map((nonce) => crypto.subtle.digest("SHA-256", encoder.encode(prefix + nonce))),
    );
    const found = digests.findIndex((d) => leadingZeroBits(new Uint8Array(d)) >= bits);
    if (found >= 0) return nonces[found];
  }
}

// Send `request(headers)` with the proof of work the event asks for now. An operator may
// raise the difficulty mid-sale: a `challenge_required` answer is solved once more.
async function withProofOfWork(request) {
  for (let attempt = 0; ; attempt++) {
    const { challenge, bits } = await api("GET", `/api/v1/events/${shop.eventId}/challenge`);
    const headers = {};
    if (bits > 0) {
      $("work").hidden = false;
      $("work").textContent = `Proving you are not a bot (${bits} bits)…`;
      const started = performance.now();
      headers["X-Seckill-Pow"] = await solve(challenge, bits);
      const took = ((performance.now() - started) / 1000).toFixed(1);
      $("work").textContent = `Proof of work done (${bits} bits, ${took} s).`;
    }
    try {
      return await request(headers);
    } catch (error) {
      if (!(error instanceof Problem && error.code === "challenge_required" && attempt === 0)) {
        throw error;
      }
    }
  }
}

// -- the waiting room (access mode "queue") ---------------------------------------------

async function joinQueue() {
  $("join").disabled = true;
  try {
    const place = await withProofOfWork((headers) =>
      api("POST", `/api/v1/events/${shop.eventId}/queue`, { headers }),
    );
    showQueue(place);
  } catch (error) {
    sayProblem(error);
    updateButtons();
  }
}

// After a sign-in or a reload: the shopper's place, if they hold one (404: not joined).
async function resumeQueue() {
  try {
    showQueue(await api("GET", `/api/v1/events/${shop.eventId}/queue`));
  } catch (error) {
    if (!(error instanceof Problem && error.status === 404)) sayProblem(error);
  }
}

function showQueue(place) {
  const names = { waiting: "waiting", admitted: "admitted: buy now", closed: "closed" };
  $("queue-state").textContent = names[place.state] || place.state;
  $("queue-state").dataset.state = place.state;
  $("queue-position").textContent = place.position ?? "–";
  $("queue-wait").textContent =
    place.estimated_wait_seconds === undefined ? "–" : `${duration(place.estimated_wait_seconds * 1000)}`;
  if (place.state === "waiting" && place.position === undefined) {
    $("queue-state").textContent = "waiting: the order is drawn at the start";
  }
  shop.queueState = place.state;
  if (place.state === "admitted") shop.pass = place.pass;
  if (place.state === "closed") {
    shop.queueClosed = place.reason === "sold_out" ? "Sold out." : "This sale has ended.";
  }
  // Poll while waiting; an admitted or closed place does not change any more.
  const waiting = place.state === "waiting";
  if (waiting && shop.queueTimer === null) {
    shop.queueTimer = setInterval(pollQueue, QUEUE_POLL_MS);
  } else if (!waiting && shop.queueTimer !== null) {
    clearInterval(shop.queueTimer);
    shop.queueTimer = null;
  }
  updateButtons();
}

async function pollQueue() {
  try {
    showQueue(await api("GET", `/api/v1/events/${shop.eventId}/queue`));
  } catch (error) {
    sayProblem(error); // a 429 or 503 passes: the next poll tries again
  }
}

// -- the draw (access mode "draw") ------------------------------------------------------

function registrationOpen() {
  const access = shop.event.access;
  if (access.mode !== "draw") return false;
  const now = serverNow();
  return Date.parse(access.registration_starts_at) <= now && now < Date.parse(access.registration_ends_at);
}

const drawStatus = () => $("draw-status").dataset.status || null;
const drawDone = () => drawStatus() === "won" || drawStatus() === "lost";

async function register() {
  $("register").disabled = true;
  try {
    const registration = await withProofOfWork((headers) =>
      api("POST", `/api/v1/events/${shop.eventId}/registrations`, { headers }),
    );
    showRegistration(registration);
  } catch (error) {
    sayProblem(error);
  }
  updateButtons();
}

function showRegistration(registration) {
  const access = shop.event.access;
  const texts = {
    registered: `registered: the draw is at ${at(access.registration_ends_at)}`,
    won: `won: buy from ${at(shop.event.starts_at)}`,
    lost: "lost: not drawn this time",
  };
  $("draw-status").textContent = texts[registration.status];
  $("draw-status").dataset.status = registration.status;
  if (registration.status === "won") shop.pass = registration.pass;
}

// The public draw, and the shopper's result while it can still change.
async function refreshDraw() {
  try {
    const draw = await api("GET", `/api/v1/events/${shop.eventId}/draw`);
    $("draw-registrants").textContent = draw.registrants;
    $("draw-winners").textContent = draw.winners ?? "after the draw";
    $("draw-commitment").textContent = draw.seed_commitment ?? "published when registration opens";
    $("draw-seed").textContent = draw.seed ?? "revealed after the draw";
    if (shop.token && !drawDone()) {
      try {
        showRegistration(await api("GET", `/api/v1/events/${shop.eventId}/registrations/me`));
      } catch (error) {
        if (!(error instanceof Problem && error.status === 404)) throw error; // not registered
      }
    }
    // Nothing changes any more once the seed is out and the shopper knows their result.
    if (draw.seed && drawDone()) clearInterval(shop.drawTimer);
  } catch (error) {
    sayProblem(error);
  }
  updateButtons();
}

// -- buying, the order, paying ----------------------------------------------------------

async function buy(itemId) {
  const button = document.querySelector(`tr[data-item="${itemId}"] .buy`);
  button.disabled = true;
  // One key per click: a retry of this very request (after a lost answer) takes no more
  // stock, the server answers it with the first answer.
  const headers = { "Idempotency-Key": crypto.randomUUID() };
  if (shop.pass) headers["X-Seckill-Pass"] = shop.pass;
  try {
    const accepted = await api("POST", `/api/v1/items/${itemId}/purchase`, {
      headers,
      body: { quantity: 1 },
    });
    say("Got it! Your order is being written; pay it below.");
    followOrder(accepted.order_id, accepted.status);
  } catch (error) {
    sayProblem(error);
  }
  updateButtons();
}

function orderRow(orderId) {
  let row = document.querySelector(`#orders li[data-order="${orderId}"]`);
  if (!row) {
    row = document.createElement("li");
    row.dataset.order = orderId;
    row.dataset.testid = "order";
    row.innerHTML = `<span class="id"></span><span class="status" data-testid="order-status"></span>
      <span class="amount"></span>
      <button type="button" class="pay" data-testid="pay" hidden>Pay</button>`;
    row.querySelector(".id").textContent = orderId;
    row.querySelector(".pay").addEventListener("click", () => pay(orderId));
    $("orders").prepend(row);
  }
  return row;
}

function showOrder(orderId, order) {
  const row = orderRow(orderId);
  row.querySelector(".status").textContent = order.status.replace("_", " ");
  row.dataset.status = order.status;
  if (order.amount) row.querySelector(".amount").textContent = order.amount;
  row.querySelector(".pay").hidden = order.status !== "pending_payment";
}

// An accepted order is `queued` until the worker writes it to Postgres (a moment later):
// only then can it be paid.
function followOrder(orderId, status) {
  showOrder(orderId, { status });
  const timer = setInterval(async () => {
    try {
      const order = await api("GET", `/api/v1/orders/${orderId}`);
      showOrder(orderId, order);
      if (order.status !== "queued") {
        clearInterval(timer);
        shop.orderTimers.delete(timer);
      }
    } catch (error) {
      sayProblem(error); // a 429 or 503 passes: the next poll tries again
    }
  }, ORDER_POLL_MS);
  shop.orderTimers.add(timer);
}

async function pay(orderId) {
  const button = orderRow(orderId).querySelector(".pay");
  button.disabled = true;
  try {
    showOrder(orderId, await api("POST", `/api/v1/orders/${orderId}/pay`));
    say("Paid. Thank you!");
  } catch (error) {
    sayProblem(error);
    button.disabled = false;
  }
}

// -- start ------------------------------------------------------------------------------

async function start() {
  $("join").addEventListener("click", joinQueue);
  $("register").addEventListener("click", register);
  $("remind").addEventListener("click", remind);
  $("sign-in").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    signIn($("token").value.trim());
  });
  try {
    await syncClock();
    await loadEvent();
  } catch (error) {
    sayProblem(error);
    return;
  }
  $("sign-in-button").disabled = false; // signing in reads the event's access mode
  setInterval(tick, TICK_MS);
  setInterval(() => loadEvent().catch(sayProblem), EVENT_POLL_MS);
  // The waiting count is a nicety: a board that fails to load leaves the last one shown.
  const board = () => loadBoard().catch(() => {});
  board();
  setInterval(board, EVENT_POLL_MS);
  if (shop.event.access.mode === "draw") {
    await refreshDraw();
    shop.drawTimer = setInterval(refreshDraw, DRAW_POLL_MS);
  }
  // ?token=JWT signs in at once (links from a shopper's app, tests); it is then dropped
  // from the address bar so it is not left in the history.
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  if (token) {
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", rest ? `?${rest}` : location.pathname);
    $("token").value = token;
    await signIn(token);
  }
}

start();
