"""Rate limiting for connection requests (SPEC C7): a sliding-window
limiter interface, and its in-process implementation."""

from .base import ALLOWED, Decision, Limiter, Window, parse_windows
from .memory import InProcessLimiter

__all__ = ["ALLOWED", "Decision", "InProcessLimiter", "Limiter", "Window", "parse_windows"]
