"""High availability (issue 21): three or more nodes coordinated by etcd.

etcd decides who leads (a key under a lease) and which followers are in sync (the ISR);
the leader streams the core's ordered durable changes to its followers (`leader.py`,
`wire.py`), which apply them to their own stores (`replica.py`), and it confirms a publish,
and answers a declaration, only once every in-sync follower has fsynced it. Followers
forward client connections to the leader (`proxy.py`); the leader's management API shows
the cluster (`view.py`). `node.py` runs one node's life; see docs/clustering.md.
"""
