"""Pull sync: jobs, schedules, keyset pages and executions."""
