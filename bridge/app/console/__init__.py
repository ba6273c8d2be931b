"""The operator's console in the browser (`server.console`): Overview, Messages, Silences and
acks, and the template playground, served by the daemon under one path. app.py holds the
sign-in and the checks; each page is one module listed in routes.py; templates/ and static/ are
bundled (nothing is fetched from elsewhere)."""
