"""How a command's help is shown: the line in the command list, a paragraph, the files it reads and
writes, and runnable examples (each command's record in :data:`gpuenv.cli.COMMANDS` holds its own)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandHelp:
    """A command's help: the line in the command list, a paragraph, its files, runnable examples."""

    summary: str
    description: str
    reads: str
    writes: str
    #: "command  # what it shows": tests/unit/test_readme.py runs every one of them.
    examples: tuple[str, ...]

    def epilog(self) -> str:
        width = max(len(e.partition("  #")[0].strip()) for e in self.examples)
        lines = ["files:", wrap(self.reads, "  reads   "), wrap(self.writes, "  writes  "), "", "examples:"]
        for example in self.examples:
            command, _, comment = example.partition("  #")
            line = f"  {command.strip():<{width}}" + (f"  # {comment.strip()}" if comment else "")
            lines.append(line.rstrip())
        return "\n".join(lines)


def wrap(text: str, first: str = "") -> str:
    return textwrap.fill(text, width=79, initial_indent=first, subsequent_indent=" " * len(first),
                         break_on_hyphens=False)
