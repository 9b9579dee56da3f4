"""Where a model's replicas run: ``thread`` (this process), ``process`` (worker processes), ``ray`` (a cluster)."""

from aiaas.placement.base import Replica, ReplicaLost, ReplicaStats

__all__ = ["Replica", "ReplicaLost", "ReplicaStats"]
