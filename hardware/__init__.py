"""Facts about the hardware we compile for (targets: core grids, L1 and DRAM sizes, mesh shapes), as data.

The lowest layer: the planner (passes/) sizes its choices with them and the runtime opens devices and
meshes with them, so neither has to import the other for these facts.
"""
