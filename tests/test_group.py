"""Grouping: one attack wave in one region is one incident, however many channels report it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.channels import ChannelRef, ChannelSettings
from bot.detect import Detector
from bot.group import Grouper, Placement, incident_id
from bot.incident import Independence, Status
from bot.models import Post

START = datetime(2025, 3, 3, 20, 0, tzinfo=UTC)
WATCH = ("RU-KDA", "RU-ROS", "RU-BEL")


class Feed:
    """Posts through the real detector into a grouper, as the pipeline would send them."""

    def __init__(self, detector: Detector, grouper: Grouper | None = None) -> None:
        self.detector = detector
        self.grouper = grouper or Grouper()
        self.ids: dict[int, int] = {}

    def post(
        self,
        channel: int,
        minutes: float,
        text: str,
        *,
        channel_settings: ChannelSettings | None = None,
        id_: int | None = None,
        **extra: object,
    ) -> tuple[Post, Placement]:
        if id_ is None:
            id_ = self.ids.get(channel, 0) + 1
        self.ids[channel] = max(self.ids.get(channel, 0), id_)
        post = Post(channel, id_, START + timedelta(minutes=minutes), text, **extra)  # type: ignore[arg-type]
        return post, self.place(post, channel_settings)

    def place(self, post: Post, settings: ChannelSettings | None = None) -> Placement:
        detection = self.detector.detect(post.text, post.date)
        watched = tuple(r for r in detection.regions if r in WATCH)
        if settings is None:
            return self.grouper.place(post, detection, watched)
        return self.grouper.place(post, detection, watched, settings)


@pytest.fixture
def feed(detector: Detector) -> Feed:
    return Feed(detector)


def test_reports_of_one_wave_share_an_incident(feed: Feed) -> None:
    _, first = feed.post(1, 0, "Взрывы в Краснодаре")
    _, second = feed.post(2, 4, "В Краснодаре работает ПВО, сбивают беспилотники")
    _, third = feed.post(3, 90, "Над Краснодаром уничтожены восемь БПЛА")
    assert first.incidents == second.incidents == third.incidents
    incident = feed.grouper.active[first.incidents[0]]
    assert incident.kinds == ("explosion", "drone", "air_defense")  # kinds grow
    assert incident.channels == 3 and incident.independent == 3
    assert incident.counts == {"drone": 8}
    assert incident.first_report == START and incident.last_report == START + timedelta(hours=1.5)


def test_other_region_is_another_incident(feed: Feed) -> None:
    _, kda = feed.post(1, 0, "Взрывы в Краснодаре")
    _, ros = feed.post(2, 5, "Взрывы в Таганроге")
    assert kda.incidents != ros.incidents
    assert len(feed.grouper.active) == 2


def test_quiet_gap_closes_and_later_report_starts_anew(feed: Feed) -> None:
    _, first = feed.post(1, 0, "Взрывы в Краснодаре")
    _, still = feed.post(1, 170, "Снова взрывы в Краснодаре")  # within 3 h of the last
    _, later = feed.post(2, 170 + 181, "Взрывы в Краснодаре")
    assert still.incidents == first.incidents
    assert later.incidents != first.incidents
    assert (first.incidents[0], "closed") in later.events
    closed = later.changed[first.incidents[0]]
    assert closed.status is Status.CLOSED and closed.closed_reason == "quiet"


def test_all_clear_ends_the_threat_kinds(feed: Feed) -> None:
    _, first = feed.post(1, 0, "Беспилотники атакуют Краснодар, работает ПВО")
    incident = feed.grouper.active[first.incidents[0]]
    _, missile = feed.post(1, 5, "Ракетная опасность в Краснодаре")
    assert missile.incidents == first.incidents
    _, partial = feed.post(1, 30, "Отбой угрозы БПЛА в Краснодаре")
    assert partial.incidents == []  # an all-clear reports nothing itself
    assert incident.status is Status.ACTIVE and incident.cleared == {"drone"}
    _, done = feed.post(1, 40, "Отбой ракетной опасности в Краснодаре")
    assert incident.status is Status.CLOSED and incident.closed_reason == "all_clear"
    assert (incident.id, "all_clear") in done.events
    _, new = feed.post(1, 50, "Снова взрывы в Краснодаре")
    assert new.incidents != first.incidents


def test_all_clear_without_kinds_closes_explosion_only_incident(feed: Feed) -> None:
    _, first = feed.post(1, 0, "Взрывы в Таганроге")
    feed.post(1, 20, "Отбой воздушной тревоги в Таганроге")
    assert feed.grouper.active == {}
    assert first.changed[first.incidents[0]].status is Status.CLOSED


def test_post_naming_two_regions_joins_both(feed: Feed) -> None:
    _, kda = feed.post(1, 0, "Взрывы в Краснодаре")
    _, both = feed.post(2, 10, "Беспилотники атаковали Краснодар и Таганрог")
    assert both.incidents[0] == kda.incidents[0]  # the first-named region first
    assert len(both.incidents) == 2
    assert both.regions == ("RU-KDA", "RU-ROS")


def test_forward_copy_and_echo_are_not_independent(feed: Feed) -> None:
    official = ChannelSettings(ChannelRef(channel_id=1), trust=2.0, official=True)
    text = "В Северском районе в результате атаки БПЛА в пгт Афипский произошло возгорание."
    _, first = feed.post(1, 0, text, channel_settings=official)
    _, fwd = feed.post(2, 5, text, forwarded_from="Оперштаб")
    _, copy = feed.post(3, 6, text + "\n\nПодписаться | @krasnodar_now")
    _, echo = feed.post(4, 6.5, "Атака дронов на Афипский, горит предприятие")
    _, other = feed.post(5, 30, "Жители Афипского слышали взрывы перед пожаром")
    incident = feed.grouper.active[first.incidents[0]]
    assert {fwd.incidents[0], copy.incidents[0], echo.incidents[0]} == {incident.id}
    independence = {m.channel_id: m.independence for m in incident.members.values()}
    assert independence == {
        1: Independence.ORIGINAL,
        2: Independence.FORWARD,
        3: Independence.COPY,
        4: Independence.ECHO,
        5: Independence.ORIGINAL,
    }
    assert incident.members[(3, 1)].similar_to == (1, 1)
    assert incident.channels == 5 and incident.independent == 2
    assert incident.official
    # noisy-or: official 0.9, echo 0.25, original 0.5 → 1 - 0.1 * 0.75 * 0.5
    assert incident.confidence == pytest.approx(0.9625, abs=0.001)


def test_regionless_copy_joins_through_near_duplicate(feed: Feed) -> None:
    local = ChannelSettings(ChannelRef(channel_id=1), home_region="RU-ROS")
    _, first = feed.post(1, 0, "Таганрог, у нас бахнуло! Работает ПВО, сбивают беспилотники")
    _, copy = feed.post(
        2, 3, "У нас бахнуло! Работает ПВО, сбивают беспилотники", channel_settings=local
    )
    assert copy.incidents == first.incidents
    assert copy.regions == ("RU-ROS",)
    assert copy.evidence[0].rule == "near_duplicate"
    assert copy.evidence[0].text.startswith("1/1 (0.")  # the post it copies, and how closely
    _, unrelated = feed.post(3, 4, "Работает ПВО!")
    assert unrelated.incidents == []  # nothing says where: no incident


def test_edit_that_no_longer_reports_leaves_and_retracts(feed: Feed) -> None:
    post, first = feed.post(1, 0, "Взрывы в Белгороде")
    incident_id_ = first.incidents[0]
    edited = Post(1, post.id, post.date, "В Белгороде прошли учения, взрывов не было")
    placement = feed.place(edited)
    assert placement.incidents == []
    assert (incident_id_, "left") in placement.events
    assert (incident_id_, "retracted") in placement.events
    assert placement.changed[incident_id_].status is Status.RETRACTED
    assert feed.grouper.active == {}


def test_edit_that_still_reports_updates_in_place(feed: Feed) -> None:
    post, first = feed.post(1, 0, "Взрывы в Белгороде")
    feed.post(2, 3, "Белгород: слышны взрывы")
    edited = Post(1, post.id, post.date, "Взрывы в Белгороде, сбиты 3 ракеты")
    placement = feed.place(edited)
    assert placement.incidents == first.incidents
    assert (first.incidents[0], "updated") in placement.events
    incident = feed.grouper.active[first.incidents[0]]
    assert incident.kinds == ("explosion", "missile", "air_defense")
    assert incident.counts == {"missile": 3}
    assert len(incident.members) == 2


def test_edit_moving_region_leaves_the_old_incident(feed: Feed) -> None:
    post, kda = feed.post(1, 0, "Взрывы в Краснодаре")
    feed.post(2, 1, "Краснодар: взрывы")
    moved = feed.place(Post(1, post.id, post.date, "Взрывы в Таганроге"))
    assert moved.incidents != kda.incidents
    assert (kda.incidents[0], "left") in moved.events
    assert feed.grouper.active[kda.incidents[0]].status is Status.ACTIVE  # still has a post


def test_ids_are_stable(detector: Detector) -> None:
    runs = []
    for _ in range(2):
        feed = Feed(detector)
        runs.append(
            [
                feed.post(1, 0, "Взрывы в Краснодаре")[1].incidents,
                feed.post(2, 2, "Беспилотники над Таганрогом")[1].incidents,
            ]
        )
    assert runs[0] == runs[1]
    post = Post(1, 1, START, "x")
    assert runs[0][0] == [incident_id("RU-KDA", post)]
    assert runs[0][0][0].startswith("RU-KDA-20250303-2000-")


def test_close_quiet_by_time(feed: Feed) -> None:
    _, first = feed.post(1, 0, "Взрывы в Краснодаре")
    assert feed.grouper.close_quiet(START + timedelta(hours=2)).changed == {}
    closed = feed.grouper.close_quiet(START + timedelta(hours=3))
    assert list(closed.changed) == first.incidents
    assert feed.grouper.active == {}


def test_late_report_outside_the_wave_starts_its_own_incident(feed: Feed) -> None:
    _, first = feed.post(1, 600, "Взрывы в Краснодаре")
    _, old = feed.post(2, 0, "Взрывы в Краснодаре")  # ten hours older: another wave
    assert old.incidents != first.incidents


def test_follow_up_joins_the_ended_incident(feed: Feed) -> None:
    _, night = feed.post(1, 0, "Взрывы в Белгороде, работает ПВО")
    _, clear = feed.post(2, 30, "Отбой угрозы в Белгороде")
    incident = clear.changed[night.incidents[0]]
    assert incident.status is Status.CLOSED
    _, summary = feed.post(2, 300, "Ночью над Белгородом сбиты 5 беспилотников")
    assert summary.incidents == night.incidents  # five hours later, the night's incident
    assert incident.status is Status.CLOSED and incident.members[(2, 2)].via == "follow_up"
    assert incident.counts == {"drone": 5}
    _, new = feed.post(3, 320, "Взрывы в Белгороде")  # not a follow-up: a new wave
    assert new.incidents != night.incidents


def test_follow_up_too_late_starts_its_own(feed: Feed) -> None:
    _, night = feed.post(1, 0, "Взрывы в Белгороде, работает ПВО")
    _, late = feed.post(2, 60 * 10, "Ночью над Белгородом сбиты 5 беспилотников")
    assert late.incidents != night.incidents


def test_ended_incidents_come_back_for_follow_ups(feed: Feed, detector: Detector) -> None:
    _, night = feed.post(1, 0, "Взрывы в Белгороде, работает ПВО")
    closed = feed.grouper.close_quiet(START + timedelta(hours=3)).changed[night.incidents[0]]
    restored = Feed(detector)
    restored.grouper.restore([closed], {})
    assert restored.grouper.active == {}
    _, summary = restored.post(2, 240, "Ночью над Белгородом сбиты 5 беспилотников")
    assert summary.incidents == night.incidents


def edit(post: Post, text: str, minutes: int = 1000) -> Post:
    return replace(post, text=text, edit_date=START + timedelta(minutes=minutes))


def test_a_late_report_never_takes_over_the_region(feed: Feed) -> None:
    _, live = feed.post(1, 600, "Взрывы в Краснодаре")
    _, late = feed.post(2, 0, "Взрывы в Краснодаре")  # caught up ten hours late
    assert late.changed[late.incidents[0]].status is Status.CLOSED  # born closed
    _, more = feed.post(3, 605, "Взрывы в Краснодаре")
    assert more.incidents == live.incidents
    assert list(feed.grouper.active) == live.incidents


def test_a_post_reporting_again_after_leaving_gets_a_fresh_id(feed: Feed) -> None:
    post, first = feed.post(1, 0, "Взрывы в Белгороде")
    feed.post(2, 10, "Взрывы в Белгороде")
    feed.place(edit(post, "Доброе утро, Белгород", 20))
    feed.grouper.close_quiet(START + timedelta(hours=4))
    again = feed.place(edit(post, "Взрывы в Белгороде", 300))
    assert again.incidents and again.incidents != first.incidents


def test_independence_is_judged_again_when_the_original_leaves(feed: Feed) -> None:
    text = "В Северском районе в результате атаки БПЛА в пгт Афипский произошло возгорание."
    original, first = feed.post(1, 0, text)
    feed.post(2, 5, text + "\n\nПодписаться | @krasnodar_now")
    incident = feed.grouper.active[first.incidents[0]]
    assert incident.members[(2, 1)].independence is Independence.COPY
    feed.place(edit(original, "В Северском районе прошли учения, взрывов не было", 30))
    assert incident.members[(2, 1)].independence is Independence.ORIGINAL
    assert incident.independent == 1 and incident.confidence == 0.5


def test_edits_between_report_and_all_clear(feed: Feed) -> None:
    only, first = feed.post(1, 0, "Взрывы в Белгороде")
    placed = feed.place(edit(only, "Отбой воздушной тревоги в Белгороде"))
    assert placed.changed[first.incidents[0]].status is Status.RETRACTED  # nothing reported

    _, wave = feed.post(2, 0, "Беспилотники атакуют Белгород, ракетная опасность")
    incident = feed.grouper.active[wave.incidents[0]]
    clear, _ = feed.post(3, 60, "Отбой угрозы БПЛА в Белгороде")
    assert incident.cleared == {"drone"}
    feed.place(edit(clear, "Над Белгородом снова беспилотники, работает ПВО"))
    assert incident.cleared == set()  # that post now reports drones
    assert incident.last_report == START + timedelta(minutes=60)


def test_a_kind_reported_again_is_no_longer_cleared(feed: Feed) -> None:
    _, wave = feed.post(1, 0, "Беспилотники атакуют Краснодар, ракетная опасность")
    incident = feed.grouper.active[wave.incidents[0]]
    feed.post(1, 10, "Отбой угрозы БПЛА в Краснодаре")
    feed.post(2, 20, "Снова беспилотники над Краснодаром, работает ПВО")
    feed.post(1, 30, "Отбой ракетной опасности в Краснодаре")
    assert incident.status is Status.ACTIVE and incident.cleared == {"missile"}


def test_follow_ups_do_not_chain(feed: Feed) -> None:
    _, night = feed.post(1, 0, "Взрывы в Белгороде, работает ПВО")
    summary = "Ночью над Белгородом сбиты 5 беспилотников"
    assert feed.post(2, 300, summary)[1].incidents == night.incidents
    assert feed.post(3, 600, summary)[1].incidents != night.incidents  # 10 h after the wave


def test_an_edited_regionless_copy_stays_in_its_closed_incident(feed: Feed) -> None:
    local = ChannelSettings(ChannelRef(channel_id=1), home_region="RU-ROS")
    _, first = feed.post(1, 0, "Таганрог, у нас бахнуло! Работает ПВО, сбивают беспилотники")
    copy, _ = feed.post(
        2, 3, "У нас бахнуло! Работает ПВО, сбивают беспилотники", channel_settings=local
    )
    closed = feed.grouper.close_quiet(START + timedelta(hours=4)).changed[first.incidents[0]]
    placed = feed.grouper.place(
        edit(copy, copy.text + " 🔥"),
        feed.detector.detect(copy.text + " 🔥"),
        (),
        earlier=[closed],
    )
    assert placed.incidents == first.incidents and (2, 1) in closed.members
