"""The worker's dashboard (:mod:`streams.runtime.web.dashboard`) and its static files."""
