"""Training jobs: data validation, built-in recipes, a DDP worker under torchrun, the launcher/scheduler, and
registration of the result as a served model version. Nothing here touches the database or HTTP: the server
backs ``JobStore`` with its database and calls ``Scheduler``.

torch is imported lazily by the modules that need it (worker, recipes); ``aiaas.training.files`` and
``aiaas.training.spec`` work without it.
"""
