"""The worker's dashboard (:mod:`streams.web.dashboard_routes`) and its static files."""
