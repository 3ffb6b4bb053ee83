"""Tools for developing the project, not part of the operations CLI: the local AWS
(`local_aws`, moto's server with the fixes the deploys need), the demo that doubles as
the end-to-end harness (`demo`, `make demo`) and the dashboard drawing for the docs
(`dashboard_picture`).
"""
