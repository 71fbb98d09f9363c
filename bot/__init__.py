"""skywatch: flag current drone, missile and air-defence reports in watched regions."""
