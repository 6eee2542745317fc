# IPython kernel settings of the code-interpreter template (installed as
# /etc/ipython/ipython_kernel_config.py, which IPython reads for every kernel).
c = get_config()  # noqa: F821

# Tracebacks as plain text: they reach users as strings, not on a terminal.
c.InteractiveShell.colors = "NoColor"
# Sequences are never shortened in text/plain results.
c.PlainTextFormatter.max_seq_length = 0
# Rich formatters for DataFrames (e2b/data) and matplotlib figures (e2b/chart).
c.InteractiveShellApp.exec_files = ["/etc/ipython/bulkhead_formatters.py"]
c.InteractiveShellApp.hide_initial_ns = True
