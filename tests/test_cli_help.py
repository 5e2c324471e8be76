"""`seckill --help` in an 80-column terminal: each command's line reads as one sentence,
wrapped only where the column is full (not where its docstring's source lines break)."""

from typer.testing import CliRunner

from app.cli.main import cli

COLUMNS = 80
# The description column's width at 80 columns, less a margin for rich's padding.
FULL_ROW = 55


def command_rows() -> dict[str, list[str]]:
    """Each command of the top-level help, with the rows its description takes."""
    result = CliRunner().invoke(
        cli, ["--help"], env={"COLUMNS": str(COLUMNS)}, terminal_width=COLUMNS
    )
    assert result.exit_code == 0, result.output
    box = result.output.split("Commands", 1)[1].splitlines()[1:]
    rows: dict[str, list[str]] = {}
    current = ""
    for line in box:
        if not line.startswith("│"):
            break
        cells = line.strip("│ ").split(None, 1)
        if not line.startswith("│  "):  # a command's first row (its name, then text)
            current = cells[0]
            rows[current] = [cells[1] if len(cells) > 1 else ""]
        else:
            rows[current].append(line.strip("│ "))
    return rows


def test_top_level_help_wraps_only_full_rows() -> None:
    rows = command_rows()
    assert {"serve", "worker", "recover", "audit", "dead-letters", "event"} <= set(rows)
    for name, text in rows.items():
        for row, following in zip(text, text[1:], strict=False):
            # A row followed by another is a full one: the next word did not fit.
            assert len(row) + 1 + len(following.split()[0]) > FULL_ROW, (name, text)
        assert text[-1].endswith("."), (name, text)
