"""The GSM-Symbolic templates: which spans of which GSM8K test questions change, and how.

Each Spec names a row of GSM8K's test.jsonl (0-based), the literal spans of its question that become
slots (never the question itself: that is read from the data folder at run time), constraints that
keep the story sound (whole people and eggs, quantities that stay positive) and the program that
computes the answer, written after the row's reference solution. Problems were chosen whose steps do
not depend on the particular numbers; pronouns are kept right by drawing names of the same pronoun.
`load` checks every literal against its row and every program against the row's answer.
"""

from __future__ import annotations

from evalsuite.dynamic.gsm_symbolic import Spec, derived, num, person

SPECS: tuple[Spec, ...] = (
    # Eggs laid, eaten and baked; the rest sold.
    Spec(
        0,
        (
            person("owner", "Janet", "she"),
            num("eggs", "16", 10, 40),
            num("eaten", "three", 2, 6),
            num("baked", "four", 2, 8),
            num("price", "2", 2, 6),
        ),
        "(eggs - eaten - baked) * price",
        ("eaten + baked < eggs",),
    ),
    # Half as much again.
    Spec(1, (num("blue", "2", 2, 40, 2),), "blue + blue / 2"),
    # Profit after repairs and a percentage rise in value.
    Spec(
        2,
        (
            person("buyer", "Josh", "he"),
            num("cost", "80,000", 50_000, 300_000, 10_000),
            num("repairs", "50,000", 10_000, 150_000, 5_000),
            num("rise", "150", 50, 250, 10),
        ),
        "cost * rise / 100 - repairs",
    ),
    # Repetitions times distance.
    Spec(
        3,
        (
            person("runner", "James", "he"),
            num("sprints", "3", 2, 8, count=2, only=(0,)),
            num("times", "3", 2, 7, count=2, only=(1,)),
            num("meters", "60", 20, 400, 10),
        ),
        "sprints * times * meters",
    ),
    # Feed per chicken; what the last meal must bring.
    Spec(
        4,
        (
            person("owner", "Wendi", "she", count=2),
            num("per", "three", 2, 6, count=2, only=(0,)),
            num("morning", "15", 5, 60),
            num("afternoon", "25", 5, 60),
            num("flock", "20", 5, 50),
        ),
        "per * flock - morning - afternoon",
    ),
    # Every second item at a percentage of the price.
    Spec(
        5,
        (
            person("buyer", "Kylar", "he", count=2),
            num("price", "5", 2, 20),
            num("share", "60", 10, 90, 10),
            num("glasses", "16", 4, 40, 2),
        ),
        "glasses / 2 * price + glasses / 2 * price * share / 100",
    ),
    # Chained multiples and a total.
    Spec(
        6,
        (num("factor", "4", 2, 9), num("seattle", "20", 5, 100)),
        "seattle + factor * seattle + 2 * factor * seattle",
    ),
    # Wage with overtime.
    Spec(
        9,
        (
            person("worker", "Eliza", "she", count=2),
            num("base", "40", 20, 40),
            num("rate", "10", 8, 40),
            num("mult", "1.2", "1.1", "1.9", "0.1"),
            num("worked", "45", 21, 60),
        ),
        "base * rate + (worked - base) * rate * mult",
        ("worked > base",),
    ),
    # Growth then a percentage drop, summed over months.
    Spec(
        10,
        (
            num("first", "60", 20, 300, 10),
            num("factor", "three", 2, 5, count=2, only=(0,)),
            num("drop", "30", 10, 60, 10),
        ),
        "first + factor * first + factor * first * (100 - drop) / 100",
        ("whole(factor * first * drop / 100)",),
    ),
    # Bill for dozens of three pastries.
    Spec(
        11,
        (
            person("buyer", "Toula", "she"),
            num("donuts", "3", 2, 9),
            num("donut_price", "68", 20, 90),
            num("cupcakes", "2", 2, 9),
            num("cupcake_price", "80", 20, 90),
            num("cheesecakes", "6", 2, 9),
            num("cheesecake_price", "55", 20, 90),
        ),
        "donuts * donut_price + cupcakes * cupcake_price + cheesecakes * cheesecake_price",
    ),
    # Working backwards through a third, some more, and half of the rest.
    Spec(
        13,
        (
            person("seller", "Melanie", "she", count=2),
            num("extra", "2", 2, 10, 2),
            num("left", "5", 2, 20),
        ),
        "(2 * left + extra) * 3 / 2",
    ),
    # Percentages of percentages.
    Spec(
        14,
        (
            num("students", "20", 20, 100, 4, count=2, only=(0,)),
            num("contemporary", "20", 10, 50, 5, count=2, only=(1,)),
            num("jazz", "25", 10, 75, 5),
        ),
        "(100 - contemporary) * (100 - jazz) / 100",
        (
            "whole(students * contemporary / 100)",
            "whole(students * (100 - contemporary) / 100 * jazz / 100)",
        ),
    ),
    # Annual salary from two hourly jobs.
    Spec(
        17,
        (
            person("teacher", "Jill", "she"),
            num("teach_rate", "20", 10, 50),
            num("coach_rate", "30", 10, 50),
            num("weeks", "50", 30, 52),
            num("teach_hours", "35", 10, 40),
            num("coach_hours", "15", 2, 20),
        ),
        "weeks * (teach_hours * teach_rate + coach_hours * coach_rate)",
    ),
    # Eggs over weeks, in dozens.
    Spec(
        18,
        (person("cook", "Claire", "she"), num("eggs", "3", 2, 6), num("weeks", "4", 2, 12)),
        "eggs * 7 * weeks / 12",
    ),
    # Ages: years since an event.
    Spec(
        21,
        (
            person("older", "Raymond", None, count=4),
            person("younger", "Samantha", None, count=3),
            num("gap", "6", 2, 12),
            num("age", "23", 18, 40),
            num("now", "31", 15, 60),
        ),
        "now + gap - age",
    ),
    # Customers in groups buying different amounts; the total of customers follows from the groups.
    Spec(
        22,
        (
            person("seller", "Billy", "he", count=2),
            derived("customers", "8", "first + second + last"),
            num("first", "3", 2, 6, count=2, only=(0,)),
            num("second", "2", 2, 6, count=2, only=(0,)),
            num("each", "2", 2, 5, count=2, only=(1,)),
            num("last", "3", 2, 6, count=2, only=(1,)),
        ),
        "first + second * each",
    ),
    # Decimal prices times pairs.
    Spec(
        26,
        (
            person("buyer", "Mishka", None, count=2),
            num("pairs", "3", 2, 6, count=3),
            num("shorts", "16.50", 10, 30, "0.5"),
            num("pants", "22.50", 15, 40, "0.5"),
            num("shoes", "42", 20, 90),
        ),
        "pairs * (shorts + pants + shoes)",
    ),
    # Cartons needed over days.
    Spec(
        27,
        (
            person("eater", "Cynthia", "she"),
            num("servings", "15", 5, 30),
            num("price", "4.00", 2, 9),
            num("days", "60", 30, 120, 10),
        ),
        "days / servings * price",
        ("whole(days / servings)",),
    ),
    # Distance between two stops.
    Spec(
        28,
        (
            person("rider", "Henry", "he"),
            num("trip", "60", 30, 120, 5),
            num("first", "20", 5, 60, 5),
            num("last", "15", 5, 60, 5),
        ),
        "trip - first - last",
    ),
    # A price from a sum and a difference.
    Spec(
        29,
        (person("shopper", "Gloria", "she"), num("less", "five", 2, 10), num("heel", "33", 10, 80)),
        "heel + 2 * heel + less",
    ),
    # Ages in a ratio.
    Spec(
        30,
        (
            person("first", "Darrell", None),
            person("second", "Allen", None, count=2),
            num("a", "7", 2, 15),
            num("b", "11", 2, 15),
            num("total", "162", 30, 300),
            num("years", "10", 2, 20),
        ),
        "total * b / (a + b) + years",
        ("a != b", "whole(total / (a + b))"),
    ),
    # Daily care over a week, with a decimal.
    Spec(
        32,
        (person("keeper", "John", "he"), num("dogs", "10", 2, 30), num("hours", ".5", "0.5", "2.5", 1)),
        "dogs * hours * 7",
    ),
    # Sum and difference.
    Spec(
        33,
        (person("owner", "Gretchen", None, count=2), num("coins", "110", 40, 300), num("more", "30", 4, 100)),
        "(coins + more) / 2",
        ("more < coins", "whole((coins + more) / 2)"),
    ),
    # A chain of comparisons between three people.
    Spec(
        34,
        (
            person("first", "Siobhan", None, count=2),
            person("second", "Aaron", None, count=2),
            person("third", "Raymond", None, count=2),
            num("fewer", "2", 2, 10),
            num("more", "5", 2, 15),
            num("third_count", "40", 10, 100, 2),
        ),
        "third_count / 2 + more - fewer",
    ),
    # A percentage more.
    Spec(
        35,
        (person("player", "Mike", "he"), num("points", "4", 2, 20), num("more", "25", 10, 100, 5)),
        "points + points * (100 + more) / 100",
    ),
    # Bundles priced together.
    Spec(
        36,
        (
            person("eater", "Terry", "he"),
            num("daily", "2", 2, 6),
            num("pack", "4", 2, 8),
            num("price", "5.00", 2, 12),
            num("days", "30", 10, 60),
        ),
        "days * daily / pack * price",
        ("whole(days * daily / pack)",),
    ),
    # Sales paying for purchases; what is left over.
    Spec(
        37,
        (
            person("seller", "John", "he"),
            num("sets", "13", 5, 40),
            num("set_price", "15", 5, 30),
            num("games", "8", 2, 15),
            num("game_price", "20", 10, 60),
            num("left", "5", 1, 20),
        ),
        "sets - (games * game_price + left) / set_price",
        ("whole((games * game_price + left) / set_price)",),
    ),
    # Speed from distance and hours.
    Spec(
        38,
        (
            person("runner", "John", "he"),
            num("miles", "60", 20, 120),
            num("first", "3", 2, 6, count=2, only=(1,)),
        ),
        "miles / (first + 2 * (first / 2))",
    ),
    # Pieces taken; the pie count is stated twice.
    Spec(
        42,
        (
            num("pies", "5", 2, 9),
            derived("pies_word", "five", "pies"),
            num("pieces", "8", 4, 12),
            num("left", "14", 2, 40),
        ),
        "pies * pieces - left",
        ("left < pies * pieces",),
    ),
    # Unit conversion: feet into inch pieces.
    Spec(
        48,
        (person("gardener", "Tracy", "she"), num("feet", "4", 2, 20), num("inches", "6", 2, 12)),
        "feet * 12 / inches",
    ),
    # A fraction of a product.
    Spec(
        49,
        (person("resident", "Richard", None), num("floors", "15", 4, 40), num("units", "8", 2, 12)),
        "floors * units / 4",
    ),
    # Dozens per day into money per week.
    Spec(
        50,
        (person("farmer", "Lloyd", "he", count=2), num("eggs", "252", 24, 600, 12), num("price", "2", 1, 6)),
        "eggs / 12 * price * 7",
    ),
    # Revenue on two days and the difference.
    Spec(
        53,
        (
            num("truck", "60", 20, 100, 5),
            num("car", "40", 10, 90, 5),
            num("truck_tires", "6", 2, 12),
            num("car_tires", "4", 2, 12),
            num("friday", "12", 2, 20),
        ),
        "abs(truck_tires * truck + car_tires * car - friday * car)",
    ),
    # A multiple and a sum.
    Spec(54, (num("adopted", "7", 2, 15), num("trixie", "12", 2, 20)), "adopted + 3 * adopted + trixie"),
    # What is left, shared into bags.
    Spec(
        55,
        (
            person("owner", "Jean", None, count=4),
            num("total", "30", 10, 60),
            num("eaten", "2", 2, 8, count=2, only=(0,)),
            num("per", "2", 2, 6, count=2, only=(1,)),
        ),
        "(total - eaten) / per",
    ),
    # How many times a budget covers a cost (rounded down).
    Spec(
        56,
        (
            person("fan", "Peter", "he"),
            num("ticket", "7", 3, 15, count=2, only=(0,)),
            num("popcorn", "7", 2, 10, count=2, only=(1,)),
            num("budget", "42", 20, 120),
        ),
        "floor(budget / (ticket + popcorn))",
    ),
    # Most boxes under a weight limit (rounded down).
    Spec(
        57,
        (
            num("limit", "5000", 3000, 9000, 100),
            num("box", "15", 5, 50),
            num("truck", "3755", 1500, 5000, 5),
        ),
        "floor((limit - truck) / box)",
    ),
    # Groups and singles.
    Spec(
        59,
        (num("clusters", "6", 2, 12), num("per", "20", 5, 40), num("loose", "67", 5, 100)),
        "clusters * per + loose",
    ),
    # A sum plus a percentage of it.
    Spec(
        61,
        (
            person("buyer", "Janet", "she"),
            num("material", "500", 100, 2000, 50),
            num("labor", "800", 100, 2000, 50),
            num("insure", "10", 5, 30, 5),
        ),
        "(material + labor) * (100 + insure) / 100",
    ),
    # Half a year at full price, half at a discount.
    Spec(
        63,
        (
            person("subscriber", "Aleena", "she"),
            num("monthly", "140", 10, 300, 10),
            num("discount", "10", 5, 50, 5),
        ),
        "6 * monthly + 6 * monthly * (100 - discount) / 100",
    ),
    # A rate scaled up.
    Spec(
        64,
        (
            person("driver", "Sophia", "she", count=2),
            num("miles", "100", 40, 400, 10),
            num("gallons", "4", 2, 10),
            num("tank", "12", 8, 25),
        ),
        "miles / gallons * tank",
        ("gallons < tank",),
    ),
    # Time per session, sessions per week, weeks.
    Spec(
        65,
        (
            person("viewer", "Jim", "he"),
            num("tv", "2", 2, 6),
            num("times", "3", 2, 7),
            num("weeks", "4", 2, 10),
        ),
        "(tv + tv / 2) * times * weeks",
    ),
    # Teams, players and coaches.
    Spec(66, (num("schools", "four", 2, 10), num("players", "5", 3, 12)), "schools * 2 * (players + 1)"),
    # Fewer, then twice as many.
    Spec(
        67,
        (num("diamonds", "175", 50, 400), num("fewer", "35", 5, 100)),
        "diamonds + (diamonds - fewer) + 2 * (diamonds - fewer)",
        ("fewer < diamonds",),
    ),
    # Ratio of students to teachers.
    Spec(68, (num("girls", "60", 10, 200), num("ratio", "5", 2, 20)), "(girls + 2 * girls) / ratio"),
    # Working backwards from savings.
    Spec(
        69,
        (
            person("saver", "Bailey", "she", count=2),
            num("allowance", "5", 2, 20),
            num("weeks", "8", 2, 20, count=2),
            num("total", "100", 50, 500, 10),
        ),
        "total - allowance * weeks",
    ),
    # Classes in a week, students per class, fee per student.
    Spec(
        70,
        (
            person("teacher", "Judy", "she"),
            num("weekday", "5", 2, 8),
            num("saturday", "8", 2, 12),
            num("students", "15", 5, 30),
            num("fee", "15.00", 5, 30),
        ),
        "(5 * weekday + saturday) * students * fee",
    ),
    # Twice as many.
    Spec(71, (person("cook", "Kelian", None, count=2), num("first", "20", 5, 50)), "first + 2 * first"),
    # Two products' sales.
    Spec(
        72,
        (
            person("seller", "Tommy", "he", count=3),
            num("brownie", "3", 1, 8),
            num("cheesecake", "4", 1, 8),
            num("brownies", "43", 5, 80),
            num("slices", "23", 5, 80),
        ),
        "brownies * brownie + slices * cheesecake",
    ),
    # Price with interest, paid in instalments.
    Spec(
        73,
        (
            person("buyer", "Shiela", None, count=2),
            num("phones", "five", 2, 10),
            num("price", "150", 50, 500, 10),
            num("interest", "2", 1, 10),
            num("months", "3", 2, 12, count=2),
        ),
        "phones * price * (100 + interest) / 100 / months",
    ),
    # Bags needed in a year (rounded up).
    Spec(
        76,
        (
            person("owner", "Cecilia", "she", count=2),
            num("first_days", "180", 30, 300, 10),
            num("later", "2", 2, 4),
            num("bag", "110", 50, 200, 10),
        ),
        "ceil((first_days + later * (365 - first_days)) / bag)",
    ),
    # Half of one, a fraction of another; the difference.
    Spec(
        77,
        (
            person("first", "Raymond", None, count=2),
            person("second", "Sarah", None, count=3),
            person("third", "David", None, count=2),
            num("factor", "4", 3, 10),
            num("pounds", "400", 40, 800, 10),
        ),
        "pounds / 2 - pounds / factor",
        ("whole(pounds / 2)", "whole(pounds / factor)"),
    ),
    # A discount.
    Spec(
        79,
        (person("owner", "John", "he"), num("cost", "100", 20, 300, 10), num("discount", "30", 5, 50, 5)),
        "cost * (100 - discount) / 100",
    ),
    # Shares of a whole and what is left.
    Spec(80, (num("total", "24", 12, 60, 6), num("boy", "6", 2, 20)), "total - 2 * total / 6 - boy"),
    # Gains and losses.
    Spec(
        81,
        (
            person("collector", "Charlie", "he", count=3),
            num("start", "10", 2, 40),
            num("bought", "21", 2, 40),
            num("birthday", "23", 2, 40),
            num("gave", "9", 2, 30),
            num("card", "28", 2, 30),
        ),
        "start + bought + birthday - gave - card",
    ),
    # A multiple less a difference; the sum.
    Spec(
        82,
        (
            person("light", "Grace", None, count=2),
            person("heavy", "Alex", None),
            num("weight", "125", 60, 200),
            num("less", "2", 2, 20),
            num("times", "4", 2, 5),
        ),
        "weight + times * weight - less",
    ),
    # A product of three counts.
    Spec(
        83,
        (
            person("gardener", "Dan", None),
            num("bushes", "3", 2, 10),
            num("roses", "25", 5, 40),
            num("thorns", "8", 2, 15),
        ),
        "bushes * roses * thorns",
    ),
    # Sum and difference of wins and losses.
    Spec(
        84,
        (num("games", "22", 10, 40), num("more", "8", 2, 20)),
        "(games + more) / 2",
        ("more < games",),
    ),
    # A multiple and half of it.
    Spec(
        86,
        (
            person("owner", "Greg", None, count=2),
            num("first", "four", 2, 10),
            num("factor", "three", 2, 5, count=2, only=(1,)),
        ),
        "first + factor * first + factor * first / 2",
    ),
    # Parts of a total in a ratio.
    Spec(
        88,
        (
            person("star", "Marilyn", None),
            person("other", "Harald", None, count=2),
            num("factor", "10", 2, 20),
            num("total", "88,000", 10_000, 200_000, 1_000),
        ),
        "total / (factor + 1)",
    ),
    # Fraction per guest times price.
    Spec(
        89,
        (person("host", "Christina", "she"), num("friends", "16", 4, 40, 4), num("price", "2", 1, 10)),
        "friends * 3 / 4 * price",
    ),
)
