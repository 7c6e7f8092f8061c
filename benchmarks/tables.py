"""One table type for both outputs: printed with rich in the terminal, written as Markdown in BENCHMARKS.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table


@dataclass
class TextTable:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns in {self.title!r}")
        self.rows.append([str(cell) for cell in cells])

    def rich(self) -> Table:
        table = Table(title=self.title, caption="\n".join(self.notes) or None, caption_justify="left")
        for index, column in enumerate(self.columns):
            table.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        return table

    def markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        lines += ["", *(f"- {note}" for note in self.notes)] if self.notes else []
        return "\n".join(lines) + "\n"


def met(value: bool | None) -> str:
    """A goal's verdict as a word."""
    return "not measured" if value is None else ("met" if value else "not met")


@dataclass(frozen=True)
class Goal:
    """A stated goal, what was measured against it, and the verdict."""

    goal: str
    measured: str
    verdict: str
