"""Rolling statistics of finished fork-model children (``GATHER_PROC_STATS``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProcStats"]


@dataclass(slots=True)
class ProcStats:
    """Totals since start plus the most recent children, for the admin socket."""

    keep: int = 1000
    count: int = 0
    wall_total: float = 0.0
    user_total: float = 0.0
    system_total: float = 0.0
    max_rss_kib: int = 0
    recent: deque[tuple[float, float, float, int]] = field(default_factory=deque)

    def add(self, wall: float, user: float, system: float, rss_kib: int) -> None:
        self.count += 1
        self.wall_total += wall
        self.user_total += user
        self.system_total += system
        self.max_rss_kib = max(self.max_rss_kib, rss_kib)
        self.recent.append((wall, user, system, rss_kib))
        if len(self.recent) > self.keep:
            self.recent.popleft()

    def summary(self) -> dict[str, Any]:
        n = self.count or 1
        return {
            "children": self.count,
            "mean_wall_ms": self.wall_total / n * 1000,
            "mean_user_ms": self.user_total / n * 1000,
            "mean_system_ms": self.system_total / n * 1000,
            "max_rss_kib": self.max_rss_kib,
        }
