"""The job engine: one store, scheduler, state machine, process management, events and logs for every kind of
long-running job (training, optimization), which plug in through ``aiaas.jobs.kinds``.

Modules, top to bottom: ``scheduler`` (queue, cores, recovery), ``runner`` (one job's process tree and monitor),
``process`` (start and stop a process tree), ``dbstore`` (the store on the database), ``store`` (``JobRecord``,
the store protocol, ``transition``), ``kinds`` (the plug-in interface), ``states`` (the state machine),
``events`` and ``jobdir`` (what workers write). No torch, no aiaas.training, no aiaas.optimize.
"""

from aiaas.jobs.states import STATES, TERMINAL, JobState

__all__ = ["STATES", "TERMINAL", "JobState"]
