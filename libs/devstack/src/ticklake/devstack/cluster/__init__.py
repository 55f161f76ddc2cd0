"""A real one-node Kubernetes cluster on this machine, from host processes.

``ticklake-stack cluster up|down|status`` and the ``tests/cluster`` fixture use
:class:`Cluster`; see ``docs/testing.md``.
"""
