"""Analytics writes, one module per feature:

- ``runs``: what a finished run records (metrics, gates, baselines by name, JUnit, cost);
- ``alerts``: alert rules, their evaluation and the deliveries they queue;
- ``delivery``: sending one alert delivery (the django-q2 task's work);
- ``history``: saved baselines, benchmarks, the history export and cleanup.
"""
