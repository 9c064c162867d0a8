from .admin import AdminServicer
from .social_graph import SocialGraphServicer

__all__ = ["AdminServicer", "SocialGraphServicer"]
