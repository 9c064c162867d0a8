from .admin import AdminServicer
from .social_graph import SocialGraphServicer
from .watch import WatchServicer

__all__ = ["AdminServicer", "SocialGraphServicer", "WatchServicer"]
