"""Alerting: rules, evaluation, routing and delivery of notifications to channels."""
