"""What every builder shares."""


def scaled(units: int, width: float) -> int:
    """Filters or dense units after the width multiplier; never fewer than one."""
    return max(1, int(round(units * width)))
