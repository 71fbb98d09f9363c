"""SQLite storage: the database, its migrations, and one repository per table group."""

from storage.db import Database
from storage.detections import DetectionRepo
from storage.posts import PostChange, PostRepo

__all__ = ["Database", "DetectionRepo", "PostChange", "PostRepo"]
