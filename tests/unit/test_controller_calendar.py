"""The controller's date as the guard reads it for every decision (guard/snapshot.py ControllerCalendar): it is
worked out once a second, and must still be the zone's date at every instant, midnight and DST included."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from guard.snapshot import ControllerCalendar

# Around local midnights: ordinary ones, DST changes, a midnight that does not exist (Santiago springs forward
# at 24:00), a quarter-hour offset, and a day that a zone skipped (Apia, 2011-12-30).
CASES = [
    ("Europe/Stockholm", date(2026, 11, 25)),
    ("Europe/Stockholm", date(2026, 3, 29)),
    ("Europe/Stockholm", date(2026, 10, 25)),
    ("America/Santiago", date(2026, 9, 5)),
    ("America/Santiago", date(2026, 4, 5)),
    ("Asia/Kathmandu", date(2026, 1, 1)),
    ("Pacific/Apia", date(2011, 12, 29)),
    ("UTC", date(2026, 12, 31)),
]
OFFSETS = (-3600.0, -1.5, -1.0, -0.5, -0.000_001, 0.0, 0.000_001, 0.5, 1.0, 3600.0)


@pytest.mark.parametrize(("zone", "day"), CASES, ids=[f"{z} {d}" for z, d in CASES])
def test_the_calendar_gives_the_zones_date_at_every_instant_around_midnight(zone, day):
    timezone = ZoneInfo(zone)
    midnight = datetime.combine(day + timedelta(days=1), time.min, tzinfo=timezone).timestamp()
    calendar = ControllerCalendar(timezone)
    for offset in OFFSETS:  # in time order, as a running guard asks
        moment = midnight + offset
        assert calendar.on(moment) == datetime.fromtimestamp(moment, timezone).date(), (zone, offset)


def test_the_calendar_answers_for_an_earlier_instant_too():
    """The clock may step back (NTP): the remembered second must not stick."""
    timezone = ZoneInfo("Europe/Stockholm")
    midnight = datetime(2026, 11, 26, tzinfo=timezone).timestamp()
    calendar = ControllerCalendar(timezone)
    assert calendar.on(midnight + 0.5) == date(2026, 11, 26)
    assert calendar.on(midnight - 0.5) == date(2026, 11, 25)


def test_today_is_the_date_now():
    timezone = ZoneInfo("Europe/Stockholm")
    before = datetime.now(timezone).date()
    today = ControllerCalendar(timezone).today()
    assert before <= today <= datetime.now(timezone).date()
