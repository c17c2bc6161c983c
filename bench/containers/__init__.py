"""The benchmark in containers, driven through the `docker` SDK (Docker's API, or Podman's
Docker-compatible socket): build the images, run the broker and each mode's container, collect
the results. Entry point: `python -m bench.containers images|run` (see images/README.md).

Modules, each with one job: engine (connecting, what the engine offers), cpusets (CPU sets
derived from the engine's CPUs), local_bases (debootstrap and Maven-jar bases for machines
without a registry), build (the image builds), broker (the broker container), run (the mode
containers and their results), cli (the command line).
"""
