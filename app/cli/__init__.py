"""The `seckill` command line (entry point `app.cli.main:main`; `python -m app.cli`):
main.py assembles the commands of processes.py (serve, worker, dev, healthcheck),
operations.py (migrate, token, recover, audit, grant, report, dead-letters), events.py
(`seckill event ...`) and orders.py (`seckill orders ...`); shared.py is what they share,
errors.py the one-line explanations of an environment's mistakes."""
