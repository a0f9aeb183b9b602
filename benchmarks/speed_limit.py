"""The same fields parse_hn / parse_lobsters extract, with selectolax (Lexbor): the speed limit for parsing.

Only a benchmark dependency: the pipeline's parsers use lxml (libxml2) with compiled XPath.
"""

from selectolax.lexbor import LexborHTMLParser


def hn(html: str) -> list[dict]:
    tree = LexborHTMLParser(html)
    out = []
    for row in tree.css("tr.athing"):
        link = row.css_first("span.titleline > a") or row.css_first("a.storylink") or row.css_first("a.titlelink")
        sub = row.next
        while sub is not None and sub.tag != "tr":
            sub = sub.next
        subtext = sub.css_first("td.subtext") if sub is not None else None
        score = subtext.css_first("span.score") if subtext else None
        user = subtext.css_first("a.hnuser") if subtext else None
        site = row.css_first("span.sitestr")
        out.append({
            "id": row.attributes.get("id"), "rank": row.css_first("span.rank").text(strip=True),
            "title": link.text(strip=True), "url": link.attributes.get("href"),
            "domain": site.text(strip=True) if site else None, "points": score.text() if score else None,
            "author": user.text() if user else None,
            "comments": [a.text() for a in subtext.css("a")][-1:] if subtext else None,
        })
    return out


def lobsters(html: str) -> list[dict]:
    tree = LexborHTMLParser(html)
    out = []
    for row in tree.css("li.story"):
        link = row.css_first("a.u-url")
        domain = row.css_first("a.domain")
        comments = row.css_first(".comments_label a")
        out.append({
            "id": row.attributes.get("data-shortid"), "title": link.text(strip=True),
            "url": link.attributes.get("href"), "domain": domain.text(strip=True) if domain else None,
            "tags": [a.text() for a in row.css("a.tag")], "comments": comments.text(strip=True) if comments else None,
            "author": (row.css_first("a.u-author") or link).text(strip=True),
        })
    return out
