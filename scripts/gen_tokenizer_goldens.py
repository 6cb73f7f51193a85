#!/usr/bin/env python3
"""Generate tests/data/tokenizer/goldens.jsonl: HuggingFace `tokenizers` (Python) output
for models/tokenizer.json (bert-base-chinese), used by tests/tokenizer.rs for exact parity.

Usage (from the repo root; the Python `tokenizers` version should equal the Rust crate's,
see Cargo.lock):

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.22.2
    /tmp/tokvenv/bin/python scripts/gen_tokenizer_goldens.py

Output: JSON Lines. Line 1 is a header object {"header": {...}} (generator command,
tokenizers version, sha256 of tokenizer.json, case counts). Every other line is one case:
    {"n": N, "text": str, "pair": str|null, "ids": [..], "attention_mask": [..],
     "type_ids": [..]}                       -- Python produced exactly N tokens
    {"n": N, "text": str, "pair": str|null, "python": "error"|"len=<k>"}
                                             -- N too small for the special tokens: Python
                                                raised or returned != N tokens; the Rust
                                                side must reject it with BadInput.
Each case is encoded with
    tok.enable_truncation(max_length=N, strategy="longest_first")
    tok.enable_padding(length=N, pad_id=0, pad_token="[PAD]")
    tok.encode(text, pair)
Non-printable characters are written as \\uXXXX escapes so the file stays diffable.
The corpus is deterministic (fixed seed), so re-running reproduces the file byte for byte.
"""

import hashlib
import json
import os
import platform
import random
import sys

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_JSON = os.path.join(ROOT, "models", "tokenizer.json")
OUT = os.path.join(ROOT, "tests", "data", "tokenizer", "goldens.jsonl")
COMMAND = "/tmp/tokvenv/bin/python scripts/gen_tokenizer_goldens.py  # tokenizers==%s" % tokenizers.__version__

MAIN_NS = (32, 128)
SMALL_NS = (2, 3, 4, 5, 8)

# ---------------------------------------------------------------- single texts
SIMPLIFIED = [
    "我爱学习",
    "今天天气很好，我们去公园散步吧。",
    "人工智能正在改变我们的生活方式。",
    "这家餐厅的菜味道不错，就是价格有点贵。",
    "请问去火车站怎么走？",
    "他昨天晚上十点才下班回家。",
    "中华人民共和国成立于一九四九年。",
    "机器学习是人工智能的一个分支。",
    "我们应该保护环境，减少塑料的使用。",
    "小明的妈妈让他去超市买酱油。",
    "这部电影的结局让人意想不到！",
    "北京是中国的首都，上海是最大的城市。",
    "学而时习之，不亦说乎？",
    "你吃饭了吗？还没呢，一起去吧。",
    "树莓派是一种小型单板计算机。",
    "深度学习模型需要大量的训练数据。",
    "长江是中国最长的河流。",
    "快递员把包裹放在了门口。",
    "哈哈哈哈哈哈哈哈哈哈",
    "嗯……这个问题我得再想想。",
    "“你好，”她说，“好久不见。”",
    "《红楼梦》是中国古典四大名著之一。",
    "他说：“明天见！”然后就走了。",
    "——破折号和～波浪号以及·间隔号",
    "我",
]
TRADITIONAL = [
    "我愛學習",
    "臺灣的夜市非常熱鬧。",
    "這個軟體的使用者介面很直覺。",
    "香港國際機場是亞洲最繁忙的機場之一。",
    "請問您需要點什麼飲料？",
    "電腦螢幕的解析度越來越高。",
    "學習中文的外國人越來越多了。",
    "颱風即將登陸，請民眾做好防颱準備。",
    "龜兔賽跑的故事告訴我們不要驕傲。",
    "體育館裡擠滿了觀眾。",
    "鬱鬱蔥蔥的森林裡傳來鳥叫聲。",
    "麵包店的蛋塔剛出爐。",
    "澳門的葡式建築別具風格。",
    "聲聲慢：尋尋覓覓，冷冷清清，淒淒慘慘戚戚。",
]
POETRY = [
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
    "大江东去，浪淘尽，千古风流人物。",
    "明月几时有？把酒问青天。不知天上宫阙，今夕是何年。",
    "关关雎鸠，在河之洲。窈窕淑女，君子好逑。",
    "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。",
    "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。",
    "锄禾日当午，汗滴禾下土。谁知盘中餐，粒粒皆辛苦。",
    "天下大事，分久必合，合久必分。",
    "君不見黃河之水天上來，奔流到海不復回。",
    "道可道，非常道；名可名，非常名。",
]
NEWS = [
    "2024年3月15日，国家统计局发布数据显示，1-2月份社会消费品零售总额81307亿元，同比增长5.5%。",
    "据新华社北京10月1日电，国庆假期首日全国铁路发送旅客1800万人次。",
    "截至2023年底，我国5G基站总数达337.7万个。",
    "上证指数收报3,052.90点，涨幅0.56%，成交额4,321亿元。",
    "第19届亚运会于2023年9月23日至10月8日在杭州举行。",
    "本次航班CA1234预计于14:35抵达，晚点约25分钟。",
    "气温：-5℃～3℃，东北风3-4级，PM2.5浓度为75μg/m³。",
    "他以9秒83的成绩获得男子100米决赛第三名。",
    "公司2022财年营收为$1.2B，同比增长12.3%，净利润￥3.4亿。",
    "联系电话：010-12345678，邮编100000。",
    "会议时间为2025-07-01 09:30:00（UTC+8）。",
    "人口约为14.1亿，其中城镇人口占65.22%。",
    "第二十次全国代表大会于10月16日开幕。",
    "比分3:2，主队在第89分钟绝杀。",
    "1998年的洪水影响了29个省份。",
]
MIXED = [
    "我买了一部iPhone 15 Pro Max。",
    "iPhone",
    "IPHONE iphone iPhone",
    "ChatGPT是OpenAI开发的大语言模型。",
    "我们用PyTorch训练BERT模型，然后导出ONNX。",
    "Hello world! 你好世界！",
    "COVID-19疫情期间大家都在家办公（WFH）。",
    "NBA总决赛G7将在周日举行。",
    "用Rust写的tokenizer比Python快很多。",
    "Raspberry Pi 4B的CPU是Cortex-A72，主频1.5GHz。",
    "他的TOEFL考了110分，GRE考了330分。",
    "This is an English sentence with some UPPER and lower Case words.",
    "The quick brown fox jumps over the lazy dog.",
    "don't won't can't it's O'Reilly",
    "Transformer-based models like BERT, GPT-2 and T5.",
    "unbelievable antidisestablishmentarianism supercalifragilisticexpialidocious",
    "在macOS和Windows上都能运行。",
    "Wi-Fi密码是abc123456。",
    "我在Google、Microsoft和Apple都面试过。",
    "QQ音乐和WeChat支付",
    "A股、B股和H股",
    "x86_64 aarch64 armv7l",
    "C++/C#/F#/Objective-C",
    "e.g. i.e. etc. vs. Mr. Dr.",
]
FULLWIDTH = [
    "ＡＢＣＤＥＦ　ａｂｃｄｅｆ",
    "１２３４５６７８９０",
    "２０２４年１２月３１日",
    "！＂＃＄％＆＇（）＊＋，－．／：；＜＝＞？＠［＼］＾＿｀｛｜｝～",
    "ｉＰｈｏｎｅ１５",
    "全角空格　在这里　出现",
    "半角ｶﾀｶﾅと全角カタカナ",
    "￥１００元，￡５０，￠",
    "「引号」『书名号』【方括号】〔龟甲〕",
    "①②③④⑤ ⅠⅡⅢⅣ ㈠㈡㈢ ⑴⑵",
]
EMOJI = [
    "😀😃😄😁",
    "今天好开心😊😊😊",
    "👍🏻👍🏿",
    "👨‍👩‍👧‍👦 一家人",
    "🇨🇳🇺🇸🇯🇵",
    "❤️ ♥ ❤",
    "🔥🔥🔥 太火了",
    "😎",
    "我😎了",
    "🤖 机器人 🦀 螃蟹 🐍 蛇",
    "☀☁☂☃ ★☆ ✓✗",
    "🀄🃏🎴",
]
CJK_OTHER = [
    "日本語のテキストも処理できますか？",
    "こんにちは、世界！",
    "東京タワーは高さ333メートルです。",
    "ひらがな カタカナ 漢字",
    "한국어 텍스트입니다.",
    "안녕하세요, 세계!",
    "서울특별시 강남구",
    "Tiếng Việt có dấu",
    "ภาษาไทย",
    "Русский текст: Привет, мир!",
    "Ελληνικά: Γειά σου Κόσμε",
    "العربية: مرحبا بالعالم",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया",
]
ACCENTED = [
    "café naïve résumé",
    "Ångström Øresund Ærø",
    "Crème brûlée à la française",
    "São Paulo, Açaí, Coração",
    "Müller Straße Größe",
    "Dvořák Łódź Kraków",
    "e\u0301 a\u0300 o\u0308",  # combining marks (NFD)
    "\u00e9 vs e\u0301",
    "Ǎ ǎ Ǐ ǐ Ǒ ǒ Ǔ ǔ Ǖ ǖ",
    "Pinyin: nǐ hǎo, xiè xie, zài jiàn",
    "ﬁ ﬂ ﬀ ligatures",
    "ÀÁÂÃÄÅ àáâãäå",
]
URLS = [
    "https://www.example.com/path/to/page?query=中文&lang=zh#section",
    "访问 http://github.com/huggingface/tokenizers 获取源码",
    "邮箱：zhang.san@example.com.cn",
    "Contact: john_doe+test@gmail.com",
    "ftp://192.168.1.1:8080/files/数据.zip",
    "https://zh.wikipedia.org/wiki/%E4%B8%AD%E6%96%87",
    "@用户名 #话题# $AAPL",
    "<div class=\"content\">你好</div>",
    "{\"key\": \"值\", \"n\": 42}",
    "C:\\Users\\张三\\Documents\\文件.txt",
]
CONTROL = [
    "零\u200b宽\u200b空\u200b格",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "\ufeffBOM开头",
    "\u200b",
    "\u200d",
    "\ufeff",
    "空\x00字符",
    "\x00",
    "\x01\x02\x03\x04\x05",
    "制表\t符",
    "换行\n符\r\n回车",
    "\x7f删除",
    "\x1b[31m红色\x1b[0m",
    "软\u00ad连字符",
    "替换\ufffd字符",
    "\ufffd",
    "非字符\uffff和\ufffe",
    "私用区\ue000\uf8ff",
    "\u2028行分隔\u2029段分隔",
    "方向\u202e控制\u202c字符",
    "\u0085NEL",
    "变体选择符\ufe0f和\ufe0e",
    "\x0b\x0c垂直制表和换页",
    "a\u0000b\u0001c",
]
RARE_CJK = [
    "\U00020000",
    "𠀀𠀁𠀂",
    "扩展B：𠮷野家",
    "𪚥（四个龙）",
    "\U00030edd\U00030ede",  # biáng (Ext G)
    "扩展A：㐀㐁㐂",
    "龘靐齉爩",
    "〇一二三",
    "⺀⺁⼀⼁",  # radicals
    "豈更車",  # compatibility ideographs
    "\U0002f800\U0002f801",  # compatibility supplement
    "𬌗𫚉𬶍",  # Ext C/D/E
    "㊀㊁㊂ ㍿ ㋿",
]
WHITESPACE = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " \t\n\r ",
    "\u3000",
    "\u00a0",
    "\u2003\u2009\u202f",
    "  前后空格  ",
    "中 间 空 格",
]
SPECIAL = [
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[PAD]",
    "[UNK]",
    "我[MASK]学习",
    "[CLS] 你好 [SEP] 世界 [SEP]",
    "[cls] [Mask]",
    "[unused1] [unused99]",
    "<S> <T>",
    "##习",
    "##",
]
SYMBOLS = [
    "3.1415926535897932384626",
    "1,000,000.00",
    "1e-10 + 2E+5 = ?",
    "∑∫∂√∞≈≠≤≥",
    "α β γ δ ε",
    "¥ € £ $ ₿ ₩",
    "!!!???...,,,",
    "—–-‐‑",
    "……",
    "→←↑↓⇒",
    "°C °F ‰ ‱",
    "(＾▽＾) (╯°□°）╯︵ ┻━┻",
    "12345678901234567890123456789012345678901234567890",
    "0",
]
LONG_BASE = (
    "树莓派（Raspberry Pi）是为学习计算机编程教育而设计的只有信用卡大小的微型电脑，"
    "其系统基于Linux。自问世以来，受众多计算机发烧友和创客的追捧，曾经一“派”难求。"
    "别看其外表“娇小”，内“心”却很强大，视频、音频等功能通通皆有，可谓是“麻雀虽小，五脏俱全”。"
)
LONG = [
    LONG_BASE,
    LONG_BASE * 4,
    "我爱学习" * 200,
    "a" * 99,
    "a" * 100,
    "a" * 101,  # max_input_chars_per_word = 100
    "b" * 5000,
    "Hello " * 300,
    "天" * 1000,
    " ".join(["word%d" % i for i in range(400)]),
    "。" * 300,
    "1234567890" * 60,
    ("The Raspberry Pi is a series of small single-board computers developed in the United Kingdom "
     "by the Raspberry Pi Foundation in association with Broadcom. ") * 5,
    "😀" * 400,
    "\U00020000" * 300,
    "\u200b" * 500 + "尾",
]

# ---------------------------------------------------------------- pairs
SHORT_PAIRS = [
    ("我爱学习", "学习使我快乐"),
    ("今天天气怎么样？", "今天是晴天，气温二十度。"),
    ("北京是中国的首都吗？", "是的，北京是中华人民共和国的首都。"),
    ("他在看书。", "他在读一本书。"),
    ("这个手机多少钱？", "iPhone 15售价5999元。"),
    ("Who wrote this?", "李白写的。"),
    ("", "只有第二句"),
    ("只有第一句", ""),
    ("", ""),
    (" ", "\t"),
    ("😀", "😎"),
    ("[MASK]", "[SEP]"),
    ("零\u200b宽", "\x00控制"),
    ("𠀀", "龘"),
    ("日本語", "한국어"),
    ("café", "naïve"),
    ("https://example.com", "a@b.cn"),
    ("床前明月光", "疑是地上霜"),
    ("臺灣", "台湾"),
    ("ＡＢＣ", "ABC"),
]
LONG_A = LONG_BASE * 3
LONG_B = "《静夜思》是唐代诗人李白所作的一首五言古诗。此诗描写了秋日夜晚，旅居在外的诗人于床前看月而思念家乡的感受。" * 4
MID = "人工智能正在改变我们的生活方式，" * 3  # ~48 chars
LONG_PAIRS = [
    (LONG_A, LONG_B),  # both long
    (LONG_B, LONG_A),
    (LONG_A, "短"),  # first long
    ("短", LONG_A),  # second long
    (LONG_A, "这是一个中等长度的问题，大约二十个字。"),
    ("这是一个中等长度的问题，大约二十个字。", LONG_B),
    (MID, MID + "再加一点"),
    (MID + "再加一点", MID),
    (MID, "短问题？"),
    ("短问题？", MID),
    ("天" * 14, "地" * 15),  # 14+15+3 = 32: fits exactly
    ("天" * 15, "地" * 15),  # 33: one over
    ("天" * 16, "地" * 16),
    ("天" * 63, "地" * 62),  # 128 exactly
    ("天" * 63, "地" * 63),
    ("天" * 100, "地" * 20),
    ("天" * 20, "地" * 100),
    ("天" * 29, ""),
    ("", "地" * 29),
    ("天" * 200, ""),
    ("", "地" * 200),
    ("b" * 5000, "我爱学习"),
    ("Hello " * 300, "你好" * 300),
    ("😀" * 100, "\U00020000" * 100),
]


def fuzz_strings(seed=20240601, count=40):
    """Random strings over a mix of Unicode blocks (no surrogates: not valid in Rust &str)."""
    rng = random.Random(seed)
    ranges = [
        (0x00, 0x7F), (0x80, 0xFF), (0x0300, 0x036F), (0x2000, 0x206F), (0x3000, 0x303F),
        (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xE0FF), (0xFF00, 0xFFEF),
        (0xFFF0, 0xFFFF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F),
        (0x10FFF0, 0x10FFFF),
    ]
    out = []
    for _ in range(count):
        length = rng.choice([1, 2, 5, 10, 30, 80, 200])
        chars = []
        for _ in range(length):
            lo, hi = rng.choice(ranges)
            chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    return out


def escape_nonprintable(line):
    """json.dumps(ensure_ascii=False) keeps e.g. U+200B raw; escape anything non-printable."""
    out = []
    for ch in line:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            cp = ord(ch)
            if cp > 0xFFFF:
                cp -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)))
            else:
                out.append("\\u%04x" % cp)
    return "".join(out)


def dedupe(items):
    seen = set()
    out = []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def main():
    singles = dedupe(
        SIMPLIFIED + TRADITIONAL + POETRY + NEWS + MIXED + FULLWIDTH + EMOJI + CJK_OTHER
        + ACCENTED + URLS + CONTROL + RARE_CJK + WHITESPACE + SPECIAL + SYMBOLS + LONG
        + fuzz_strings()
    )
    pairs = dedupe(SHORT_PAIRS + LONG_PAIRS)
    inputs = [(t, None) for t in singles] + [(a, b) for a, b in pairs]

    tok = Tokenizer.from_file(TOKENIZER_JSON)
    cases = []

    def run(text, pair, n):
        tok.enable_truncation(max_length=n, strategy="longest_first")
        tok.enable_padding(length=n, pad_id=0, pad_token="[PAD]")
        case = {"n": n, "text": text, "pair": pair}
        try:
            enc = tok.encode(text, pair)
        except BaseException as e:  # pyo3 PanicException derives from BaseException
            case["python"] = "error"
            case["python_error"] = "%s: %s" % (type(e).__name__, str(e)[:200])
            return case
        if len(enc.ids) != n:
            case["python"] = "len=%d" % len(enc.ids)
            return case
        case["ids"] = enc.ids
        case["attention_mask"] = enc.attention_mask
        case["type_ids"] = enc.type_ids
        return case

    for n in MAIN_NS:
        for text, pair in inputs:
            cases.append(run(text, pair, n))
    small_inputs = [("我爱学习", None), ("", None), ("天" * 20, None), ("我爱学习", "学习"),
                    ("", ""), ("天" * 20, "地" * 3), ("天" * 3, "地" * 20), ("天" * 20, "地" * 20)]
    for n in SMALL_NS:
        for text, pair in small_inputs:
            cases.append(run(text, pair, n))

    with open(TOKENIZER_JSON, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    header = {
        "header": {
            "generator": "scripts/gen_tokenizer_goldens.py",
            "command": COMMAND,
            "tokenizers_version": tokenizers.__version__,
            "python_version": platform.python_version(),
            "tokenizer_json_sha256": sha,
            "settings": 'enable_truncation(max_length=N, strategy="longest_first"); '
                        'enable_padding(length=N, pad_id=0, pad_token="[PAD]"); encode(text, pair)',
            "distinct_inputs": len(inputs),
            "distinct_single_texts": len(singles),
            "distinct_pairs": len(pairs),
            "cases": len(cases),
            "cases_python_rejected": sum(1 for c in cases if "python" in c),
        }
    }
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(escape_nonprintable(json.dumps(header, ensure_ascii=False)) + "\n")
        for c in cases:
            f.write(escape_nonprintable(json.dumps(c, ensure_ascii=False, separators=(",", ":"))) + "\n")
    print("wrote %s: %d cases (%d inputs: %d singles, %d pairs; %d rejected by Python)" % (
        os.path.relpath(OUT, ROOT), len(cases), len(inputs), len(singles), len(pairs),
        header["header"]["cases_python_rejected"]), file=sys.stderr)


if __name__ == "__main__":
    main()
