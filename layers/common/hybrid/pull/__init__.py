"""pull-trigger: sync jobs over HTTP, and the minute timer that starts and drives pulls."""
