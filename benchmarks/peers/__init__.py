"""Helpers of benchmarks/serving.py and benchmarks/balancer.py, and the peers they compare against.

Peer apps (``fastapi_app.py``, ``bentoml_service.py``), their pinned requirements
(``requirements-*.txt``), proxy configuration templates (``proxy_configs/``), the wrk script
(``wrk_report.lua``), and small modules: ``wrk`` (run and parse wrk), ``stats`` (medians, spreads,
tables), ``results`` (runs by cell), ``servers`` / ``proxies`` (what to start and how),
``processes`` (start, wait, stop whole process groups), ``venvs`` (one virtualenv per peer),
``serving_report`` / ``balancer_report`` (the tables), ``output`` (progress, CSV).
Not part of the mltoolkit package: the scripts put ``benchmarks/`` on ``sys.path``.
"""
