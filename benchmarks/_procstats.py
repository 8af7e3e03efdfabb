"""Process figures the benchmarks share."""


def cpu_seconds():
    """CPU seconds (user + system, all threads) of this process and its children, e.g. a DataLoader's workers."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # A child that ended meanwhile.
            pass
    return total
