"""The copy follower ends when ansible-playbook is gone, even when it was gone before the follower started.

ansible-core's workers call setsid(), so a kill -9 of ansible-playbook leaves the worker that runs
carbot.migration.copy_follow (or job_follow) alive. Left running, it removed the copy job's status file at the
job's end under the rerun's follower, and once the pipe to the dead controller was full its display writes
blocked for ever.
Its watchdog must end it. The worst moment is a kill between the fork of the worker and the start of the task:
the worker's parent pid is then already 1, so it has to know the controller from the fork (multiprocessing).

Real processes: a "controller" forks a worker the way ansible-core does (multiprocessing fork, setsid in the
worker) and dies; the worker starts the watchdog only after that and then sleeps as if blocked.
"""

import os
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from ansible_collections.carbot.migration.plugins.plugin_utils import async_job

    def worker(ready_path):
        os.setsid()                       # as ansible-core's WorkerProcess._detach does
        with open(ready_path, "w") as handle:
            handle.write(str(os.getpid()))
        while os.getppid() == multiprocessing.parent_process().pid:
            time.sleep(0.05)              # the controller is killed before the task starts
        async_job.stop_when_orphaned(interval=0.1)
        time.sleep(60)                    # blocked, as in a display write to a full pipe
        os._exit(0)

    if __name__ == "__main__":
        proc = multiprocessing.get_context("fork").Process(target=worker, args=(sys.argv[1],))
        proc.start()
        while not os.path.exists(sys.argv[1]) or not open(sys.argv[1]).read():
            time.sleep(0.05)
        os._exit(0)                       # the controller dies (as after kill -9), its worker lives on
""")


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_an_orphaned_follower_ends_even_when_the_controller_died_before_its_task_started(tmp_path):
    ready = tmp_path / "worker.pid"
    script = tmp_path / "controller.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), str(ready)], check=True, timeout=60,
                   env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    worker = int(ready.read_text())
    try:
        deadline = time.monotonic() + 20
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(worker), "the orphaned follower's worker is still running 20 s after its controller died"
    finally:
        if alive(worker):
            os.kill(worker, 9)
