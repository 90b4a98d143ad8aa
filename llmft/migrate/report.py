"""What a migration did, line by line: what was carried over, and what was not and what to do instead."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    done: list[str] = field(default_factory=list)  # "what -> where" lines
    notes: list[str] = field(default_factory=list)  # carried over, but worth knowing
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # (key or entry, why and what instead)

    def mapped(self, line: str) -> None:
        self.done.append(line)

    def note(self, line: str) -> None:
        self.notes.append(line)

    def not_mapped(self, key: str, suggestion: str) -> None:
        self.unmapped.append((key, suggestion))

    def lines(self) -> list[str]:
        out = [f"  {line}" for line in self.done]
        out += [f"  note: {line}" for line in self.notes]
        if self.unmapped:
            out.append(f"  not carried over ({len(self.unmapped)}):")
            out += [f"    ! {key}: {suggestion}" for key, suggestion in self.unmapped]
        return out
