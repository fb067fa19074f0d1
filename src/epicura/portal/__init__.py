"""The admin portal: server-rendered pages (Jinja2 + htmx) under `/admin`, signed in with a
cookie session, for the admin role only."""
