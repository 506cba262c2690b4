"""Local stand-ins for the systems the migration talks to (CarBot admin API, Kubernetes API).

Each one speaks real HTTP over a loopback socket so that the roles are tested through the same
clients (``ansible.builtin.uri``, kubernetes.core) that they use against production.
"""
