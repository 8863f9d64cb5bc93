"""The one HTTP client every reader of LMX uses: the admin key header, no
redirects, timeouts, and errors that are safe to log."""
