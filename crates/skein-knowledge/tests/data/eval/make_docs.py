"""Writes the evaluation corpus's binary documents (DOCX, PPTX, PDF, EPUB) and its GB18030 text
file from the text below (run from this folder: python3 make_docs.py). The text was written for
this corpus; the files are committed so the evaluation needs no Python.
"""
import os, zipfile

OUT = "docs"

def zip_file(name, members):
    with zipfile.ZipFile(os.path.join(OUT, name), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in members:
            z.writestr(path, data)

def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

CT = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>'

# ---------------------------------------------------------------- DOCX
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
def para(text, style=None):
    ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{ppr}<w:r><w:t xml:space="preserve">{esc(text)}</w:t></w:r></w:p>'
def table(rows):
    return "<w:tbl>" + "".join("<w:tr>" + "".join(f"<w:tc>{para(c)}</w:tc>" for c in row) + "</w:tr>" for row in rows) + "</w:tbl>"
STYLES = f'''<w:styles {W}>
<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>
<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>
<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>
</w:styles>'''
def docx(name, body):
    zip_file(name, [
        ("[Content_Types].xml", CT),
        ("word/document.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{body}</w:body></w:document>'),
        ("word/styles.xml", STYLES),
    ])

docx("en-bike-share.docx",
    para("Riverside Bike Share: Rider Rules", "Title")
    + para("Memberships", "Heading1")
    + para("A day pass costs 4 dollars and covers unlimited rides of up to 30 minutes each within 24 hours.")
    + para("An annual membership costs 85 dollars; students with a valid card pay 45 dollars a year.")
    + table([["Plan", "Price", "Ride length included"], ["Day pass", "4 dollars", "30 minutes"], ["Annual", "85 dollars", "45 minutes"], ["Student annual", "45 dollars", "45 minutes"]])
    + para("Riding and returning", "Heading1")
    + para("Each minute beyond the included ride length is charged at 15 cents.")
    + para("Bikes must be returned to a docking station; a bike left outside a station for more than two hours incurs a 25 dollar recovery fee.")
    + para("Riders must be at least 16 years old to hold an account of their own.")
    + para("Electric bikes", "Heading1")
    + para("Electric bikes are limited to an assisted speed of 25 km/h and cost 10 cents extra per minute.")
    + para("An electric bike whose battery shows one bar or less should not be taken out; report it in the app so the crew can swap the battery.")
    + para("Damage and safety", "Heading1")
    + para("Report a flat tyre or broken brake by pressing the red wrench button on the dock before returning the bike.")
    + para("Helmets are not provided, but riders under 18 must wear one by city ordinance.")
)

docx("zh-community-garden.docx",
    para("向阳社区菜园管理办法", "Title")
    + para("地块申请", "Heading1")
    + para("每户居民最多可申请一块地块，每块面积为六平方米。")
    + para("申请每年一月开放，由居委会抽签分配，租期为一年。")
    + para("地块年费为一百二十元，六十五岁以上老人减半收取。")
    + para("用水与工具", "Heading1")
    + para("公共水龙头开放时间为早上六点至晚上八点，夏季延长到晚上九点。")
    + para("工具房的钥匙在物业前台登记后借用，当天归还。")
    + table([["工具", "数量", "借用上限"], ["铁锹", "八把", "两小时"], ["喷壶", "十二个", "半天"], ["独轮车", "两辆", "一小时"]])
    + para("种植规定", "Heading1")
    + para("禁止使用化学除草剂，病虫害请优先采用人工捕捉或生物防治。")
    + para("植株高度不得超过一点八米，以免遮挡相邻地块的阳光。")
    + para("连续两个月无人打理的地块将被收回，重新分配给候补居民。")
    + para("堆肥区", "Heading1")
    + para("厨余堆肥箱位于菜园东北角，只接收果皮菜叶，不接收肉类和油脂。")
)

# ---------------------------------------------------------------- PPTX
P = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
def shape(ph, *lines):
    phx = f'<p:ph type="{ph}"/>' if ph else ""
    paras = "".join(f"<a:p><a:r><a:t>{esc(l)}</a:t></a:r></a:p>" for l in lines)
    return f'<p:sp><p:nvSpPr><p:cNvPr id="2" name="s"/><p:cNvSpPr/><p:nvPr>{phx}</p:nvPr></p:nvSpPr><p:txBody><a:bodyPr/>{paras}</p:txBody></p:sp>'
def ptable(rows):
    def cell(t):
        return f"<a:tc><a:txBody><a:p><a:r><a:t>{esc(t)}</a:t></a:r></a:p></a:txBody></a:tc>"
    return ("<p:graphicFrame><a:graphic><a:graphicData><a:tbl>"
            + "".join("<a:tr>" + "".join(cell(c) for c in row) + "</a:tr>" for row in rows)
            + "</a:tbl></a:graphicData></a:graphic></p:graphicFrame>")
def rels(items):
    return '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' + "".join(
        f'<Relationship Id="{i}" Type="{REL}/{t}" Target="{target}"/>' for i, t, target in items) + "</Relationships>"
def pptx(name, slides):
    """slides: [(body xml, notes text or None)]"""
    members = [("[Content_Types].xml", CT)]
    ids = "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 1}"/>' for i in range(len(slides)))
    members.append(("ppt/presentation.xml", f'<p:presentation {P}><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>'))
    members.append(("ppt/_rels/presentation.xml.rels", rels([(f"rId{i + 1}", "slide", f"slides/slide{i + 1}.xml") for i in range(len(slides))])))
    for i, (body, notes) in enumerate(slides, 1):
        members.append((f"ppt/slides/slide{i}.xml", f'<p:sld {P}><p:cSld><p:spTree>{body}</p:spTree></p:cSld></p:sld>'))
        if notes:
            members.append((f"ppt/slides/_rels/slide{i}.xml.rels", rels([("rId2", "notesSlide", f"../notesSlides/notesSlide{i}.xml")])))
            members.append((f"ppt/notesSlides/notesSlide{i}.xml", f'<p:notes {P}><p:cSld><p:spTree>{shape("body", notes)}</p:spTree></p:cSld></p:notes>'))
    zip_file(name, members)

pptx("en-greenhouse.pptx", [
    (shape("title", "Northfield Greenhouse: Spring Review") + shape(None, "Prepared by the growing team for the board meeting."), None),
    (shape("title", "Harvest") + ptable([["Crop", "Harvest (kg)", "Change"], ["Tomatoes", "1,840", "+12%"], ["Cucumbers", "960", "-4%"], ["Basil", "310", "+30%"]]),
     "Cucumbers fell because a powdery mildew outbreak in March cost us two beds."),
    (shape("title", "Energy") + shape(None, "Heating used 41 MWh this spring, down from 55 MWh last year.", "The new thermal screens close automatically when the outside temperature drops below 8 degrees."), None),
    (shape("title", "Water") + shape(None, "Rainwater now covers 63 percent of irrigation.", "Drip lines are flushed every Friday to stop clogging."), "The second rainwater tank arrives in June."),
    (shape("title", "Next steps") + shape(None, "Trial LED grow lights on bench 7 from July.", "Hire one seasonal worker for the August harvest."), None),
])

pptx("zh-product-launch.pptx", [
    (shape("title", "晨光智能台灯发布会") + shape(None, "市场部 产品发布方案"), None),
    (shape("title", "发布安排") + shape(None, "发布会定于九月十八日下午两点在滨江会展中心举行。", "现场预计邀请三百名媒体和经销商嘉宾。"), "直播同步在公司官方视频号进行，预计时长九十分钟。"),
    (shape("title", "产品规格") + ptable([["型号", "亮度", "续航", "售价"], ["晨光 S1", "五百流明", "八小时", "二百九十九元"], ["晨光 S1 Pro", "八百流明", "十二小时", "四百五十九元"]]), None),
    (shape("title", "卖点") + shape(None, "色温可在两千七百K到六千五百K之间无级调节。", "内置环境光传感器，自动调节亮度保护视力。"), "演示时请重点展示夜间阅读模式。"),
    (shape("title", "预售") + shape(None, "预售期间前一千名下单的用户赠送无线充电底座。", "首批产品于十月八日开始发货。"), None),
])

# ---------------------------------------------------------------- PDF
def pdf(pages, fonts):
    objects = []
    def add(body):
        objects.append(body)
        return len(objects)
    catalog = add(None)
    pages_obj = add(None)
    font_refs = {n: make(add) for n, make in fonts.items()}
    page_ids = []
    for content in pages:
        stream = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        res = " ".join(f"/{n} {i} 0 R" for n, i in font_refs.items())
        page_ids.append(add(f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 612 792] /Resources << /Font << {res} >> >> /Contents {stream} 0 R >>".encode()))
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode()
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects[pages_obj - 1] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out)

def helvetica(add):
    return add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")

def pdf_text(text):
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

def latin_page(lines):
    ops = ["BT /F1 11 Tf 72 740 Td 15 TL"]
    ops += [f"({pdf_text(l)}) Tj T*" for l in lines]
    ops.append("ET")
    return "\n".join(ops).encode()

lab_pages = [
    ["Hartwell Teaching Lab - Safety Manual", "Section 1. Before you start",
     "Safety glasses must be worn at all times once you pass the yellow line at the door.",
     "Long hair is tied back and open shoes are not allowed in the lab.",
     "Every new student completes the online induction and signs the register before the first practical.",
     "Hartwell Teaching Lab - page 1"],
    ["Hartwell Teaching Lab - Safety Manual", "Section 2. Chemicals",
     "Concentrated acids are poured only inside the fume cupboard with the sash below the marked height.",
     "Always add acid to water, never water to acid.",
     "Waste solvents go into the red cans under bench C; halogenated waste goes into the green can.",
     "Hartwell Teaching Lab - page 2"],
    ["Hartwell Teaching Lab - Safety Manual", "Section 3. Emergencies",
     "The eyewash station is next to the north sink; rinse an affected eye for at least 15 minutes.",
     "For a small spill use the spill kit in the blue cabinet and tell the technician.",
     "In a fire alarm leave by the east stairs and gather at the flagpole in the car park.",
     "Hartwell Teaching Lab - page 3"],
]
open(os.path.join(OUT, "en-lab-safety.pdf"), "wb").write(pdf([latin_page(p) for p in lab_pages], {"F1": helvetica}))

fire_pages = [
    ["明湖大厦消防演练通知", "一、演练时间",
     "本次消防演练定于十一月二十日上午十点开始，全程约四十分钟。",
     "演练开始时全楼警铃将鸣响三次，请勿惊慌。",
     "明湖大厦物业服务中心 第一页"],
    ["明湖大厦消防演练通知", "二、疏散路线",
     "低楼层人员从东侧楼梯疏散，高楼层人员从西侧楼梯疏散，严禁乘坐电梯。",
     "集合地点为大厦南门外的中心广场，各楼层安全员负责清点人数。",
     "明湖大厦物业服务中心 第二页"],
    ["明湖大厦消防演练通知", "三、灭火器使用",
     "演练中将示范干粉灭火器的使用方法：拔掉保险销，对准火焰根部按下压把。",
     "每层楼的灭火器放置在电梯厅和消防栓旁边，每月检查一次压力表。",
     "明湖大厦物业服务中心 第三页"],
]
chars = sorted({c for page in fire_pages for line in page for c in line})
cid = {c: i + 1 for i, c in enumerate(chars)}
def cjk(add):
    body = " ".join(f"<{cid[c]:04X}> <{ord(c):04X}>" for c in chars)
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Custom def "
            "1 begincodespacerange <0000> <FFFF> endcodespacerange "
            f"{len(chars)} beginbfchar {body} endbfchar endcmap CMapName currentdict /CMap defineresource pop end end").encode()
    to_unicode = add(b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream")
    descriptor = add(b"<< /Type /FontDescriptor /FontName /NotEmbedded /Flags 4 /FontBBox [0 0 1000 1000] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>")
    descendant = add(f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /NotEmbedded /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor {descriptor} 0 R /DW 1000 >>".encode())
    return add(f"<< /Type /Font /Subtype /Type0 /BaseFont /NotEmbedded /Encoding /Identity-H /DescendantFonts [{descendant} 0 R] /ToUnicode {to_unicode} 0 R >>".encode())
def cjk_page(lines):
    ops = ["BT /F2 11 Tf 72 740 Td 15 TL"]
    ops += ["<" + "".join(f"{cid[c]:04X}" for c in l) + "> Tj T*" for l in lines]
    ops.append("ET")
    return "\n".join(ops).encode()
open(os.path.join(OUT, "zh-fire-drill.pdf"), "wb").write(pdf([cjk_page(p) for p in fire_pages], {"F2": cjk}))

# ---------------------------------------------------------------- EPUB
XH = 'xmlns="http://www.w3.org/1999/xhtml"'
def epub(name, chapters):
    items = "".join(f'<item id="c{i}" href="text/c{i}.xhtml" media-type="application/xhtml+xml"/>' for i in range(len(chapters)))
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    members = [
        ("mimetype", "application/epub+zip"),
        ("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>'),
        ("OEBPS/content.opf", f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest>{items}</manifest><spine>{spine}</spine></package>'),
    ]
    for i, (title, paras) in enumerate(chapters):
        body = f"<h1>{esc(title)}</h1>" + "".join(f"<p>{esc(p)}</p>" for p in paras)
        members.append((f"OEBPS/text/c{i}.xhtml", f'<?xml version="1.0" encoding="utf-8"?><html {XH}><head><title>{esc(title)}</title></head><body>{body}</body></html>'))
    zip_file(name, members)

epub("en-lighthouse.epub", [
    ("Chapter 1: The Keeper", [
        "Greyhaven Light stands on a granite spur at the mouth of the Corran estuary.",
        "It was first lit in 1851, and its lamp burned colza oil until paraffin replaced it in 1874.",
        "Edith Marrow kept the light for twenty-six years, the longest service of any keeper there.",
    ]),
    ("Chapter 2: The Storm", [
        "During the great gale of 1893 the keepers rowed out twice and rescued eleven sailors from the schooner Alder.",
        "The tower's lower windows were bricked up after waves broke them in that same storm.",
    ]),
    ("Chapter 3: The Light Today", [
        "The light was automated in 1986 and now flashes white twice every fifteen seconds.",
        "Its beam can be seen from 19 nautical miles away in clear weather.",
        "Visitors may climb the 132 steps to the lantern gallery on summer weekends.",
    ]),
])

epub("zh-river-town.epub", [
    ("第一章 初到南溪", [
        "我们乘早班大巴从杭州出发，车程大约一个半小时便到了南溪古镇。",
        "古镇的门票是一百元，包含七个主要景点，当天可多次进出。",
        "小镇以一条东西走向的河道为中心，两岸共有十一座石拱桥。",
    ]),
    ("第二章 老街美食", [
        "老街上最有名的小吃是定胜糕，用米粉和豆沙蒸制而成，每块两元。",
        "傍晚我们在河边的茶馆喝了当地的熏豆茶，里面放了烘青豆、芝麻和橘皮。",
    ]),
    ("第三章 夜游与住宿", [
        "夜游的摇橹船每晚七点到九点运营，每船最多坐六人，费用一百二十元。",
        "我们住在百年老宅改建的民宿里，临河房间周末价格为四百八十元一晚。",
        "离开时在游客中心寄出了一张明信片，邮戳上印着古镇的石桥图案。",
    ]),
])

# ---------------------------------------------------------------- GB18030 text
notice = """停水通知

因市政供水管道改造，清河路片区将于本周六暂停供水。

停水时间：上午八点至下午六点，共十个小时。

影响范围：清河路一号至八十八号，以及绿园小区全部楼栋。

请居民提前储备生活用水。物业将在小区北门设置临时供水车，每户限取二十升。

恢复供水后水质可能短暂浑浊，请先放水三分钟再使用。

如有疑问请拨打供水服务热线九六一一六。
"""
open(os.path.join(OUT, "zh-water-notice.txt"), "wb").write(notice.encode("gb18030"))

# ---------------------------------------------------------------- XLSX
def xlsx(name, sheets):
    """sheets: [(sheet name, rows of cell texts)]; text cells go through the shared strings."""
    strings, index = [], {}
    def sid(text):
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]
    def col(i):
        s = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            s = chr(65 + r) + s
        return s
    members = [("[Content_Types].xml", CT)]
    sheet_entries, rels_entries = "", []
    for n, (title, rows) in enumerate(sheets, 1):
        sheet_entries += f'<sheet name="{esc(title)}" sheetId="{n}" r:id="rId{n}"/>'
        rels_entries.append((f"rId{n}", "worksheet", f"worksheets/sheet{n}.xml"))
        xml_rows = ""
        for r, row in enumerate(rows, 1):
            cells = ""
            for c, value in enumerate(row):
                ref = f"{col(c)}{r}"
                if isinstance(value, (int, float)):
                    cells += f'<c r="{ref}"><v>{value}</v></c>'
                else:
                    cells += f'<c r="{ref}" t="s"><v>{sid(value)}</v></c>'
            xml_rows += f'<row r="{r}">{cells}</row>'
        members.append((f"xl/worksheets/sheet{n}.xml", f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{xml_rows}</sheetData></worksheet>'))
    members.append(("xl/workbook.xml", f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="{REL}"><sheets>{sheet_entries}</sheets></workbook>'))
    members.append(("xl/_rels/workbook.xml.rels", rels(rels_entries)))
    sst = "".join(f"<si><t>{esc(s)}</t></si>" for s in strings)
    members.append(("xl/sharedStrings.xml", f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{len(strings)}">{sst}</sst>'))
    zip_file(name, members)

xlsx("en-office-supplies.xlsx", [
    ("Stock", [
        ["Item", "Shelf", "In stock", "Reorder at", "Supplier"],
        ["A4 printer paper (box of 5 reams)", "S1", 42, 10, "Papermill Direct"],
        ["Black toner cartridge TN-420", "S3", 6, 4, "Inkwell Supplies"],
        ["Whiteboard markers (pack of 4)", "S2", 25, 8, "Inkwell Supplies"],
        ["USB-C charging cable 2 m", "S5", 14, 5, "Volt & Co"],
    ]),
    ("Ordering rules", [
        ["Rule", "Detail"],
        ["Approval", "Orders above 300 dollars need approval from the office manager"],
        ["Delivery", "Papermill Direct delivers on Tuesdays and Thursdays"],
        ["Returns", "Unopened items can be returned within 14 days for a full refund"],
    ]),
])

# ---------------------------------------------------------------- a scanned PDF
# A page of Chinese text drawn as an image (ImageMagick with the WenQuanYi Zen Hei font,
# slightly rotated and noisy like a scan), put into a PDF with no text layer: only OCR reads it.
import subprocess, tempfile
SCAN_LINES = [
    (44, "图书馆临时闭馆通知"),
    (32, "因空调系统检修，市图书馆将于三月十五日至三月十七日临时闭馆。"),
    (32, "闭馆期间，借阅的图书可投入东门外的自助还书箱。"),
    (32, "到期日在闭馆期间的图书，自动续借七天，不产生逾期费用。"),
    (32, "电子阅览室的线上资源照常开放，读者可在家登录使用。"),
    (32, "三月十八日上午九点恢复开放，当天延长开放至晚上十点。"),
]
with tempfile.TemporaryDirectory() as tmp:
    jpg = os.path.join(tmp, "scan.jpg")
    args = ["convert", "-size", "1240x1754", "xc:white", "-font", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "-fill", "black"]
    y = 160
    for size, line in SCAN_LINES:
        args += ["-pointsize", str(size), "-annotate", f"+100+{y}", line]
        y += 120 if size > 40 else 70
    args += ["-rotate", "0.6", "-attenuate", "0.3", "+noise", "Gaussian", "-colorspace", "Gray", "-quality", "60", jpg]
    subprocess.run(args, check=True)
    image = open(jpg, "rb").read()
    width, height = map(int, subprocess.run(["identify", "-format", "%w %h", jpg], check=True, capture_output=True, text=True).stdout.split())
def scanned_pdf(image, width, height):
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % (width, height, len(image)) + image + b"\nendstream",
    ]
    draw = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
    objects.append(b"<< /Length %d >>\nstream\n" % len(draw) + draw + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
open(os.path.join(OUT, "zh-library-closure-scan.pdf"), "wb").write(scanned_pdf(image, width, height))
