"""What a deployment reports: the CPU-efficiency report, its hints and the progress line.

``efficiency``
    :class:`~daskdeploy.report.efficiency.EfficiencyMeter` measures a run;
    :class:`~daskdeploy.report.efficiency.EfficiencyReport` is what it found.
``hints``
    What to change when the figures say the run wasted its workers.
``text``
    The report as text.
``progress``
    The live progress line of ``daskdeploy run``.
"""
