"""The on-prem connector: runs inside the customer's network, reads their databases through
read-only layers (`connector.sqlguard`, `connector.sources`) and sends only masked rows out."""
