"""Web: API errors and principals, request limits, the console's sessions, pages and charts."""
