# ruff: noqa: E501  (HL7 segments are written as one line each, as they travel)
"""Writes the corpus (tests/hl7v2/messages/*.hl7) from the texts below: segments end in CR,
each file in the charset its MSH-18 names. Run once after editing a text; the files are what
the tests read."""

from pathlib import Path

HERE = Path(__file__).parent / "messages"
LAB = "郑州市金水区检验中心^12410105MB1A2B3CXG^USCC"

MESSAGES = {
    # ADT^A01, UTF-8: PID-3 repeats (身份证, hospital number under its OID, 居民健康卡),
    # PID-5 repeats (the Chinese name and its pinyin), an address with a county code, a phone.
    "adt-a01-utf8": (
        "utf-8",
        [
            "MSH|^~\\&|HIS|郑州市第一人民医院^12410100MB0A1B2C6D^USCC|JTYS|GW|20261201083000+0800||ADT^A01^ADT_A01|ADT0001|P|2.5.1|||||CHN|UNICODE UTF-8",
            "EVN|A01|20261201083000+0800",
            "PID|1||410102198003150022^^^^NNCHN~0012345^^^郑州一院&2.16.156.10011.1.1.41010001&ISO^PI~HC41010298765^^^^HC||张三^^^^^^L~ZHANG^SAN^^^^^A||19800315|F|||金水路100号^^郑州市^河南省^450000^CHN^H^^410105||13800138000",
            "PV1|1|I|内科^301^2",
        ],
    ),
    # ADT^A04, GB18030 (MSH-18 GB 18030-2000): 李四, an address whose text carries escapes.
    "adt-a04-gb18030": (
        "gb18030",
        [
            "MSH|^~\\&|HIS|郑州市第一人民医院^12410100MB0A1B2C6D^USCC|JTYS|GW|20261201090000+0800||ADT^A04^ADT_A01|ADT0002|P|2.5.1|||||CHN|GB 18030-2000",
            "EVN|A04|20261201090000+0800",
            "PID|1||410102197506200031^^^^ID||李四||19750620|M|||经三路\\T\\纬五路口 3\\S\\2单元^^郑州市^河南省^450008||13900139000",
        ],
    ),
    # ADT^A08: 张三's address and phone changed: the same Patient, updated.
    "adt-a08-update": (
        "utf-8",
        [
            "MSH|^~\\&|HIS|郑州市第一人民医院^12410100MB0A1B2C6D^USCC|JTYS|GW|20261202100000+0800||ADT^A08^ADT_A01|ADT0003|P|2.5.1|||||CHN|UNICODE UTF-8",
            "EVN|A08|20261202100000+0800",
            "PID|1||410102198003150022^^^^NNCHN~0012345^^^郑州一院&2.16.156.10011.1.1.41010001&ISO^PI||张三^^^^^^L||19800315|F|||花园路8号^^郑州市^河南省^450003^CHN^H^^410105||13700137000",
        ],
    ),
    # ORU^R01, UTF-8: one report (fasting glucose, HbA1c, urine protein, HBsAg, CRP) with
    # NM, ST, CE and SN values, units, ranges, flags, a specimen, a performing lab in OBX-23.
    "oru-r01-utf8": (
        "utf-8",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261201153000+0800||ORU^R01^ORU_R01|LAB20261201001|P|2.5.1|||||CHN|UNICODE UTF-8",
            "PID|1||410102198003150022^^^^NNCHN||张三||19800315|F",
            "ORC|RE|SQ2026120100123|JY202612010001",
            "OBR|1|SQ2026120100123|JY202612010001|LAB-BIO^生化检验^L|||20261201073000+0800|||||||||||||||20261201152000+0800||CH|F",
            "OBX|1|NM|1558-6^空腹血糖^LN||6.80|mmol/L^mmol/L^UCUM|3.9-6.1|H|||F|||20261201073000+0800|||||||||金水区检验中心^^^^^^USCC^^^12410105MB1A2B3CXG",
            "OBX|2|NM|4548-4^糖化血红蛋白^LN||5.60|%|4.0-6.0|N|||F|||20261201073000+0800",
            "OBX|3|ST|20454-5^尿蛋白^LN||阴性||阴性|NEG|||F",
            "OBX|4|CE|5196-1^乙肝表面抗原^LN||260385009^Negative^SCT||||||F",
            "OBX|5|SN|1988-5^C反应蛋白^LN||<^0.5|mg/L|<10||||F",
            "SPM|1|SP20261201001||SER^血清^HL70487|||||||||||||20261201073000+0800",
        ],
    ),
    # ORU^R01, GB18030: escapes in values and comments (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ and hex
    # \\X..\\ bytes of the message's charset: C0EE is 李), repeated abnormal flags.
    "oru-r01-gb18030-escapes": (
        "gb18030",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261201160000+0800||ORU^R01^ORU_R01|LAB20261201002|P|2.5.1|||||CHN|GB 18030-2000",
            "PID|1||410102197506200031^^^^ID||李四||19750620|M",
            "OBR|1|SQ2026120100456|JY202612010002|LAB-URINE^尿常规^L|||20261201080000+0800|||||||||||||||20261201155000+0800||CH|F",
            "OBX|1|ST|5778-6^尿液颜色^LN||淡黄色\\F\\清亮 \\S\\ 无沉淀 \\T\\ 送检人\\XC0EE\\医生 \\E\\备注\\E\\||||||F",
            "OBX|2|NM|2823-3^血钾^LN||5.9|mmol/L|3.5～5.5|H~A|||F",
            "NTE|1||复查\\R\\建议一周内复查",
        ],
    ),
    # ORU^R01 with segments out of order where the meaning is clear: an OBX before the only
    # OBR, PID after it, ORC after its OBR, SPM before the OBX of its group.
    "oru-r01-out-of-order": (
        "utf-8",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261202090000+0800||ORU^R01^ORU_R01|LAB20261202001|P|2.5.1|||||CHN|UNICODE UTF-8",
            "OBX|1|NM|718-7^血红蛋白^LN||128|g/L|115-150|N|||F|||20261202070000+0800",
            "OBR|1|SQ2026120200789|JY202612020001|LAB-CBC^血常规^L|||20261202070000+0800|||||||||||||||20261202085000+0800||HM|F",
            "PID|1||410102199001010047^^^^NNCHN||王芳||19900101|F",
            "ORC|RE|SQ2026120200789|JY202612020001",
            "SPM|1|SP20261202001||BLD^全血^HL70487",
            "OBX|2|NM|6690-2^白细胞计数^LN||11.2|10\\S\\9/L|3.5-9.5|H|||F|||20261202070000+0800",
            "OBX|3|NM|777-3^血小板计数^LN||210|10\\S\\9/L|125-350|N|||F|||20261202070000+0800",
        ],
    ),
    # ORU^R01 with two reports (OBR groups), v2.3 style specimen in OBR-15.
    "oru-r01-two-reports": (
        "utf-8",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261202100000+0800||ORU^R01|LAB20261202002|P|2.3.1|||||CHN|UNICODE UTF-8",
            "PID|1||410102200008080051^^^^NNCHN||赵强||20000808|M",
            "OBR|1|SQ2026120200901|JY202612020002|LAB-LIPID^血脂四项^L|||20261202071500+0800||||||||SER^血清|||||||20261202095000+0800||CH|F",
            "OBX|1|NM|2093-3^总胆固醇^LN||5.72|mmol/L|<5.2|H|||F",
            "OBX|2|NM|2571-8^甘油三酯^LN||1.45|mmol/L|<1.7|N|||F",
            "OBR|2|SQ2026120200902|JY202612020003|LAB-RENAL^肾功能^L|||20261202071500+0800||||||||SER^血清|||||||20261202095000+0800||CH|F",
            "OBX|1|NM|2160-0^血肌酐^LN||78|umol/L|57-111|N|||F",
        ],
    ),
    # Malformed: an NM value that is no number. AE, ERR at OBX[2]-5; nothing is stored.
    "malformed-bad-number": (
        "utf-8",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261202110000+0800||ORU^R01^ORU_R01|LAB20261202003|P|2.5.1|||||CHN|UNICODE UTF-8",
            "PID|1||410102198003150022^^^^NNCHN||张三||19800315|F",
            "OBR|1|SQ2026120201001|JY202612020004|LAB-BIO^生化检验^L|||20261202073000+0800|||||||||||||||20261202105000+0800||CH|F",
            "OBX|1|NM|2345-7^血糖^LN||5.1|mmol/L|3.9-6.1|N|||F",
            "OBX|2|NM|2823-3^血钾^LN||偏高|mmol/L|3.5-5.5|H|||F",
        ],
    ),
    # Malformed: no message control ID (MSH-10). AE, ERR at MSH[1]-10.
    "malformed-no-control-id": (
        "utf-8",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261202110000+0800||ORU^R01^ORU_R01||P|2.5.1|||||CHN|UNICODE UTF-8",
            "PID|1||410102198003150022^^^^NNCHN||张三||19800315|F",
            "OBR|1|SQ2026120201002|JY202612020005|LAB-BIO^生化检验^L||||||||||||||||||||CH|F",
        ],
    ),
    # Malformed: a broken segment (no segment ID). AE, ERR at the segment.
    "malformed-broken-segment": (
        "utf-8",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261202110000+0800||ORU^R01^ORU_R01|LAB20261202004|P|2.5.1|||||CHN|UNICODE UTF-8",
            "PID|1||410102198003150022^^^^NNCHN||张三||19800315|F",
            "这不是一个段|1|2",
        ],
    ),
    # Malformed: an OBX before the first of two OBRs: its report cannot be known. AE (100).
    "malformed-obx-before-two-obr": (
        "utf-8",
        [
            f"MSH|^~\\&|LIS|{LAB}|JTYS|GW|20261202110000+0800||ORU^R01^ORU_R01|LAB20261202005|P|2.5.1|||||CHN|UNICODE UTF-8",
            "PID|1||410102198003150022^^^^NNCHN||张三||19800315|F",
            "OBX|1|NM|2345-7^血糖^LN||5.1|mmol/L|3.9-6.1|N|||F",
            "OBR|1|SQ2026120201003|JY202612020006|LAB-BIO^生化检验^L|||20261202073000+0800|||||||||||||||20261202105000+0800||CH|F",
            "OBR|2|SQ2026120201004|JY202612020007|LAB-BIO^生化检验^L|||20261202073000+0800|||||||||||||||20261202105000+0800||CH|F",
        ],
    ),
    # An ADT whose PID-3 holds only the hospital's own number: the resident cannot be
    # identified (the ID number is the key). AE, ERR at PID[1]-3 (101).
    "malformed-adt-no-id-card": (
        "utf-8",
        [
            "MSH|^~\\&|HIS|郑州市第一人民医院^12410100MB0A1B2C6D^USCC|JTYS|GW|20261202130000+0800||ADT^A04^ADT_A01|ADT0004|P|2.5.1|||||CHN|UNICODE UTF-8",
            "PID|1||0012399^^^郑州一院&2.16.156.10011.1.1.41010001&ISO^PI||孙七||19700101|M",
        ],
    ),
    # A message type the gateway does not take: AR (200).
    "unsupported-orm": (
        "utf-8",
        [
            "MSH|^~\\&|HIS|郑州市第一人民医院^12410100MB0A1B2C6D^USCC|JTYS|GW|20261202120000+0800||ORM^O01^ORM_O01|ORM0001|P|2.5.1|||||CHN|UNICODE UTF-8",
            "PID|1||410102198003150022^^^^NNCHN||张三||19800315|F",
        ],
    ),
}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, (charset, segments) in MESSAGES.items():
        (HERE / f"{name}.hl7").write_bytes(("\r".join(segments) + "\r").encode(charset))


if __name__ == "__main__":
    main()
