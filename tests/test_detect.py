"""Detection on hard cases of the language: places in every case, slang, traps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.detect import Detector
from tests.conftest import POST_DATE

ALERTS = [
    # (text, regions, kinds that must be among the detected ones)
    ("Взрывы в Краснодаре", ["RU-KDA"], ["explosion"]),
    ("Над Таганрогом работает ПВО, сбиты два БПЛА", ["RU-ROS"], ["drone", "air_defense"]),
    ("На Кубани беспилотники атакуют НПЗ", ["RU-KDA"], ["drone"]),
    ("В Ростовской области уничтожены 7 беспилотников", ["RU-ROS"], ["drone", "air_defense"]),
    ("У Краснодарі чути вибухи", ["RU-KDA"], ["explosion"]),
    ("Таганрозі працює ППО", ["RU-ROS"], ["air_defense"]),
    ("Громко в Белгороде, хлопки со стороны Харьковской горы", ["RU-BEL"], ["explosion"]),
    ("Прилёт в Новороссийске, горит нефтебаза", ["RU-KDA"], ["explosion"]),
    ("Прилет в Новороссийске", ["RU-KDA"], ["explosion"]),
    ("Оренбуржье: бахнуло так, что дрожали стёкла", ["RU-ORE"], ["explosion"]),
    ("Белгородчина: ракетная опасность", ["RU-BEL"], ["missile"]),
    ("Беспилотная опасность в Белгородской области", ["RU-BEL"], ["drone"]),
    ("Внимание! Угроза атаки БПЛА по Ростовской области", ["RU-ROS"], ["drone"]),
    ("Взрвы в Таганроге!", ["RU-ROS"], ["explosion"]),
    ("работает пво над Таганрогом, сбивают беспилотнки", ["RU-ROS"], ["drone", "air_defense"]),
    ("Харків — вибухи! Балістика", ["UA-63"], ["explosion", "missile"]),
    ("Шахеди над Харковом, працює ППО", ["UA-63"], ["drone", "air_defense"]),
    (
        "Explosions reported in Taganrog, air defense active",
        ["RU-ROS"],
        ["explosion", "air_defense"],
    ),
    ("Drones downed over Rostov Oblast overnight", ["RU-ROS"], ["drone", "air_defense"]),
    ("Жители посёлка Ясный слышали мощный взрыв", ["RU-ORE"], ["explosion"]),
    ("Беспилотник атаковал Туапсинский НПЗ", ["RU-KDA"], ["drone"]),
    ("Атака БПЛА на Ростов-на-Дону: в Ростове-на-Дону слышны взрывы", ["RU-ROS"], ["drone"]),
    ("В Ростове взрывы, работает ПВО", ["RU-ROS"], ["explosion"]),
    ("Взрыв газа в жилом доме в Оренбурге, есть пострадавшие", ["RU-ORE"], ["explosion"]),
    ("Новороссийск 💥💥", ["RU-KDA"], ["explosion"]),
    ("Дроны атакуют Краснодар\n\n#Краснодар", ["RU-KDA"], ["drone"]),
    ("Взрывы в Славянске-на-Кубани, работает ПВО", ["RU-KDA"], ["explosion"]),
    ("Обломки БПЛА упали в Энеме — это Адыгея", ["RU-AD"], ["drone"]),
    ("Во Владимире слышны взрывы", ["RU-VLA"], ["explosion"]),
    ("Мощные взрывы в Орле, работает ПВО", ["RU-ORL"], ["explosion", "air_defense"]),
    ("Курская АЭС: дрон атаковал хранилище", ["RU-KRS"], ["drone"]),
    (
        "Над Брянской, Курской и Белгородской областями сбиты 25 БПЛА",
        ["RU-BRY", "RU-KRS", "RU-BEL"],
        ["drone", "air_defense"],
    ),
    ("Работает ПВО над Крымом", ["UA-43"], ["air_defense"]),
    ("Атака «Гераней» на Воронеж", ["RU-VOR"], ["drone"]),
    ("Сумщина: 2 шахеди на Шостку", ["UA-59"], ["drone"]),
    ("Москва: громко в районе Кунцево", ["RU-MOW"], ["explosion"]),
    ("Kharkiv's mayor: explosions in the city", ["UA-63"], ["explosion"]),
    ("Отбой угрозы БПЛА в Ростовской области. В Краснодаре взрывы", ["RU-KDA"], ["explosion"]),
    ("Внимание по БПЛА в Курской области", ["RU-KRS"], ["drone"]),
    ("БПЛА в сторону Белгорода", ["RU-BEL"], ["drone"]),
    ("Дроны на Краснодар", ["RU-KDA"], ["drone"]),
    ("Увага! БПЛА на Харків", ["UA-63"], ["drone"]),
    ("Белгород: взрывы. Губернатор призвал не распространять фейки", ["RU-BEL"], ["explosion"]),
    ("В Краснодаре взрывы, работает ПВО. В Ростове прошли учения МЧС.", ["RU-KDA"], ["explosion"]),
    ("Над Таганрогом сбиты 3 БПЛА. Вечером в парке будет салют", ["RU-ROS"], ["drone"]),
    ("Губернатор Владимир Владимиров: над Ставропольем сбит БПЛА", ["RU-STA"], ["drone"]),
    ("Сегодня в Краснодаре взрывы, вчера было тихо", ["RU-KDA"], ["explosion"]),
    ("В Каменске-Шахтинском взрывы", ["RU-ROS"], ["explosion"]),
    ("ПВО над Курском", ["RU-KRS"], ["air_defense"]),
    ("Таганрог: ПВО!", ["RU-ROS"], ["air_defense"]),
    ("Air defense is active over Belgorod", ["RU-BEL"], ["air_defense"]),
    ("В Лисках прилёт", ["RU-VOR"], ["explosion"]),
    ("Вибухи у Миколаєві", ["UA-48"], ["explosion"]),
    ("Взрывы в Великих Луках", ["RU-PSK"], ["explosion"]),
    ("Взрывы в Мирном", [], ["explosion"]),  # several towns are called Мирный: unresolved
    ("Ціль на Харків", ["UA-63"], ["drone"]),
    ("В Ростовской области взрывы, Белгородская трасса перекрыта", ["RU-ROS"], ["explosion"]),
    ("Цель курсом на Курск", ["RU-KRS"], ["drone"]),
    ("Міський голова: у Харкові влучання в Салтівському районі", ["UA-63"], ["explosion"]),
    ("Над Белгородом сбиты 9 реактивных снарядов РСЗО", ["RU-BEL"], ["missile"]),
    (
        "Минобороны: над Воронежской областью уничтожены 9 БПЛА, над Белгородской — 5.",
        ["RU-VOR", "RU-BEL"],
        ["drone", "air_defense"],
    ),
    ("Громко! Это уже не салют 😨 Работает ПВО над Курском", ["RU-KRS"], ["air_defense"]),
    (
        "Курск атакуют беспилотники — жители слышат взрывы, многие приняли их за салют.",
        ["RU-KRS"],
        ["drone", "explosion"],
    ),
    (
        "⚠️ Севастополь, внимание! Отражается атака безэкипажных катеров, стрельба в районе "
        "Любимовки.",
        ["UA-40"],
        ["drone", "air_defense"],
    ),
    ("Продолжается отражение атаки БЭК на Севастополь", ["UA-40"], ["drone"]),
    ("ВС РФ нанесли удар «Искандером» по предприятию в Запорожье", ["UA-23"], ["missile"]),
    ("Kherson: Russian FPV drones keep hunting civilians; one man injured", ["UA-65"], ["drone"]),
    ("Россия нанесла баллистический удар по Днепру", ["UA-12"], ["missile"]),
    ("За ніч над Дніпропетровщиною збили 16 дронів", ["UA-12"], ["drone", "air_defense"]),
]

NOT_ALERTS = [
    "Взрыв эмоций: «Краснодар» обыграл «Зенит»",
    "Взрывной рост цен на клубнику в Краснодаре",
    "Ролик школьницы из Таганрога взорвал TikTok",
    "Рэпер из Ростова-на-Дону выпустил трек «Взрыв»",
    "Шоу дронов на набережной в Краснодаре: 300 квадрокоптеров",
    "Доставка дронами: пиццерия в Таганроге тестирует квадрокоптеры",
    "Кубанские аграрии закупили агродроны для опрыскивания полей",
    "Учения ПВО прошли в Ростовской области: расчёты отработали отражение удара",
    "Год назад беспилотник атаковал НПЗ в Туапсе",
    "Жильцы дома в Таганроге, пострадавшего при атаке БПЛА в 2023 году, ждут компенсацию",
    "Суд в Краснодаре арестовал мужчину, который передавал координаты перед атакой дронов",
    "Хлопки в центре Таганрога — это праздничный салют",
    "Видео «взрыва в Армавире» — фейк",
    "В Таганроге взорвут старую водонапорную башню: снос запланирован на субботу",
    "Газ взорвался на Краснодарской улице в Москве",  # regions: RU-MOW, not watched
    "Отбой угрозы БПЛА в Ростовской области",
    "Відбій повітряної тривоги в Харкові",
    "Владимир Путин провёл совещание по ПВО",
    "Орёл парил над полем, фермер запустил дрон",
    "Минобороны: за неделю над регионами России сбиты более 600 беспилотников",
    "Пробка на Ростовском шоссе из-за ДТП",
    "Что делать при атаке БПЛА: отойдите от окон. Не снимайте работу ПВО.",
    "Фестиваль дронов в Краснодаре: гонки FPV на стадионе «Кубань»",
    "Пожар на складе в Краснодаре, взрывов не было",
    "В Таганроге без взрывов: ночь прошла спокойно",
    "В Белгороде не слышно взрывов",
    "Цены на жильё в Краснодаре взлетели как ракета",
    "Над Черным морем сбиты 10 БПЛА",
    "День войск ПВО отметили в Краснодаре",
    "Ветеран ПВО из Таганрога отметил юбилей",
    "Власти Белгорода закупили системы ПВО",
    "Ракетка теннисиста из Краснодара",
    "Беспилотники могут атаковать Краснодар, заявил эксперт",
    "Хлопки в ладоши в Таганроге",
    "«Ракета» из Ростова обыграла соперников в финале",
    "Курсанты из Оренбурга прошли обучение на операторов БПЛА",
    "Гроза над Краснодаром: громко гремит гром",
    "В Таганроге громко отметили день города",
    "Житель Таганрога собрал дрон своими руками",
    "В Краснодаре будут продавать квадрокоптеры в новом магазине",
    "Цель визита в Белгород — переговоры",
    "Цены на черешню в Курске взлетели ракетой",
    "Взрыва в Брянске удалось избежать: газовики устранили утечку",
    "Официально: взрывов в Липецке сегодня утром не было.",
    "Громкий хлопок в Воронеже — у автобуса лопнуло колесо.",
    "Сообщения о взрыве в Старом Осколе не соответствуют действительности.",
    "Как действовать при атаке беспилотника в Белгороде: не подходите к окнам.",
    "Ізраїль атакував Іран: вибухи в Тегерані, працює іранська ППО.",
    "Салют в Севастополе в 21:30 над Южной бухтой. Не пугайтесь хлопков вечером!",
    "Громкий хлопок на пляже в Севастополе — отдыхающие запускали петарды.",
    "Last August a drone strike set off a fire at a fuel depot in Rostov Oblast.",
    "Drones downed over the Black Sea and the Sea of Azov overnight.",
    "«Рубин» забивает на последней минуте — стадион взорвался! Казань празднует победу.",
]


@pytest.mark.parametrize(("text", "regions", "kinds"), ALERTS)
def test_alerts_are_flagged_with_their_region(
    detector: Detector, text: str, regions: list[str], kinds: list[str]
) -> None:
    detection = detector.detect(text, POST_DATE)
    assert list(detection.regions) == regions, detection.evidence
    assert set(kinds) <= set(detection.kinds), detection.evidence
    assert detection.alert is bool(regions)


@pytest.mark.parametrize("text", NOT_ALERTS)
def test_non_alerts_in_watched_regions_are_not_flagged(detector: Detector, text: str) -> None:
    detection = detector.detect(text, POST_DATE)
    watched = {"RU-KDA", "RU-ROS", "RU-ORE", "RU-BEL", "UA-63", "RU-VLA", "RU-ORL"}
    assert not (detection.alert and set(detection.regions) & watched), detection


def test_all_clear_is_reported_separately(detector: Detector) -> None:
    detection = detector.detect("Отбой угрозы БПЛА в Ростовской области", POST_DATE)
    assert detection.all_clear
    assert not detection.alert
    assert detection.regions == ("RU-ROS",)
    assert detection.kinds == ("drone",)


def test_evidence_gives_terms_places_and_spans(detector: Detector) -> None:
    text = "⚡️Взрывы над Таганрогом — работает ПВО"
    detection = detector.detect(text, POST_DATE)
    by_rule = {(e.rule, e.text) for e in detection.evidence}
    assert ("term:explosion", "Взрывы") in by_rule
    assert ("term:air_defense", "ПВО") in by_rule
    assert ("place:name", "Таганрогом") in by_rule
    for item in detection.evidence:
        assert text[item.start : item.end] == item.text
    place = next(e for e in detection.evidence if e.rule == "place:name")
    assert (place.region, place.place) == ("RU-ROS", "Таганрог")


def test_rejected_reports_say_why(detector: Detector) -> None:
    detection = detector.detect("Учения ПВО под Таганрогом", POST_DATE)
    assert not detection.alert
    assert "drill" in detection.rejected


def test_a_year_before_the_post_makes_it_past(detector: Detector) -> None:
    text = "В Белгороде открыли мемориал погибшим при обстреле и взрывах 30 декабря 2023 года"
    assert not detector.detect(text, POST_DATE).alert
    later = detector.detect("Взрывы в Белгороде 30 декабря 2025 года", POST_DATE)
    assert later.alert


def test_air_defence_verbs_need_a_weapon(detector: Detector) -> None:
    detection = detector.detect("В Краснодаре водитель сбил пешехода", POST_DATE)
    assert not detection.kinds


def test_ambiguous_short_name_is_settled_by_context(detector: Detector) -> None:
    detection = detector.detect("На Кубани беспилотники атакуют Славянск", POST_DATE)
    assert detection.regions == ("RU-KDA",)
    assert detector.detect("Слов'янськ: вибухи", POST_DATE).regions == ("UA-14",)


def test_district_of_a_named_city_is_not_another_region(detector: Detector) -> None:
    detection = detector.detect("Харьков атакуют дроны, прилёты в Киевском районе", POST_DATE)
    assert detection.regions == ("UA-63",)


def test_posts_without_attack_terms_leave_early(detector: Detector) -> None:
    detection = detector.detect("Доброе утро, Таганрог! Сегодня +12", POST_DATE)
    assert detection.evidence == ()
    assert not detection.alert


def test_detection_is_deterministic(detector: Detector) -> None:
    text = "Взрывы в Краснодаре и Таганроге, работает ПВО"
    first = detector.detect(text, POST_DATE)
    assert all(detector.detect(text, POST_DATE) == first for _ in range(3))
    assert first.regions == ("RU-KDA", "RU-ROS")


def test_a_named_date_before_the_post_makes_it_past(detector: Detector) -> None:
    june = datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert not detector.detect("Это было 5 мая: взрывы в Таганроге", june).alert
    assert not detector.detect("Вспоминаем 10 октября: над Белгородом сбиты ракеты", june).alert
    assert detector.detect("1 июня, ночь: взрывы в Таганроге", june).alert
    assert detector.detect("31 мая поздно вечером в Таганроге взрывы", june).alert


def test_no_date_means_no_year_check(detector: Detector) -> None:
    text = "Взрывы в Белгороде, 2024"
    assert not detector.detect(text, datetime(2025, 1, 1, tzinfo=UTC)).alert
    assert detector.detect(text, None).alert


def test_evidence_of_a_prefix_term_is_the_whole_word_once(detector: Detector) -> None:
    detection = detector.detect("Беспилотники сбиты над Таганрогом", POST_DATE)
    drones = [(e.text, e.start, e.end) for e in detection.evidence if e.kind == "drone"]
    assert drones == [("Беспилотники", 0, 12)]


def test_huge_text_is_read_only_so_far(detector: Detector) -> None:
    detection = detector.detect("Взрывы в Таганроге. " + "Новости. " * 100_000, POST_DATE)
    assert detection.regions == ("RU-ROS",)


def test_lower_case_names_are_regions_and_large_towns_only(detector: Detector) -> None:
    assert detector.detect("курск, слышны взрывы", POST_DATE).regions == ("RU-KRS",)
    assert detector.detect("на кубани взрывы", POST_DATE).regions == ("RU-KDA",)
    # «окнам» is also a form of the village Окни (UA-51): not a place in lower case.
    detection = detector.detect("Взрывы, не подходите к окнам! Таганрог", POST_DATE)
    assert detection.regions == ("RU-ROS",)


def test_a_nationwide_summary_takes_no_region(detector: Detector) -> None:
    detection = detector.detect("Повітряні сили: за ніч запустили 85 ударних дронів, збито 52.")
    assert "national_summary" in detection.rejected and not detection.alert


def test_an_english_date_before_the_post_makes_it_past(detector: Detector) -> None:
    date = datetime(2025, 5, 29, 10, tzinfo=UTC)
    text = "Correction: the drone attack on Kursk was on May 26, not May 28."
    assert detector.detect(text, date).rejected == ("past",)


def test_all_clear_with_a_passing_threat(detector: Detector) -> None:
    detection = detector.detect("Отбой. Угроза атаки БПЛА в Липецке миновала ✅")
    assert detection.all_clear and not detection.alert


def test_follow_up_evidence(detector: Detector) -> None:
    follow_up = detector.detect("Ночью над Липецком сбиты 8 БПЛА, повреждена крыша склада.")
    assert [e.text for e in follow_up.evidence if e.rule == "follow_up"] == ["Ночью"]
    for text in (
        "Ночью снова взрывы в Липецке!",  # nothing shot down or counted: a new report
        "Ночью угроза атаки БПЛА, сбиты 2 беспилотника над Липецком",  # a warning
    ):
        assert not any(e.rule == "follow_up" for e in detector.detect(text).evidence)


def test_evidence_of_a_symbol_term_is_the_symbol(detector: Detector) -> None:
    detection = detector.detect("Таганрог: снова бахнуло 💥")
    [bang] = [e for e in detection.evidence if e.start == 24]
    assert (bang.text, bang.end, bang.kind) == ("💥", 25, "explosion")


def test_guided_bombs_and_slang_for_shaheds(detector: Detector) -> None:
    assert detector.detect(
        "Пуски КАБів на Сумщину! Краснопільська громада — в укриття."
    ).kinds == ("missile",)
    assert detector.detect("Guided bombs (KABs) hit the outskirts of Sumy").kinds == ("missile",)
    assert "drone" in detector.detect("Мопеди курсом на Коростень! Житомирщина — увага.").kinds


def test_planned_demolitions_and_fundraisers_are_not_reports(detector: Detector) -> None:
    for text in (
        "У Житомирі ДСНС проводитиме планове знищення вибухонебезпечних предметів — будуть "
        "чути вибухи, не хвилюйтеся.",
        "Збір на дрони-перехоплювачі для ППО Сумщини: залишилось 120 тис. грн",
    ):
        assert not detector.detect(text).alert, text
    # A real report that ends with a donation link is still one.
    report = detector.detect("Вибухи в Сумах, працює ППО.\nЗбір на дрони: monobank.ua/jar/1")
    assert report.alert and report.regions == ("UA-59",)
