"""The validator's message catalogue: stable codes, issue types, Chinese and English texts.

Codes are stable (users search for them); never reuse a retired code. Templates use
`str.format` fields; every field a template names must be passed by the caller.
"""

from __future__ import annotations

from typing import NamedTuple

MESSAGE_SYSTEM = "https://fhir.jtys.cn/CodeSystem/validation-message"


class Message(NamedTuple):
    issue_type: str  # http://hl7.org/fhir/issue-type
    zh: str
    en: str


MESSAGES: dict[str, Message] = {
    # structure
    "VAL-1000": Message(
        "structure", "内容不是 FHIR 资源：{detail}", "Not a FHIR resource: {detail}"
    ),
    "VAL-1001": Message("structure", "未知元素 '{name}'", "Unknown element '{name}'"),
    "VAL-1002": Message(
        "required",
        "元素 '{name}' 最少出现 {min} 次，实际 {count} 次",
        "Element '{name}' requires at least {min} occurrence(s), found {count}",
    ),
    "VAL-1003": Message(
        "structure",
        "元素 '{name}' 最多出现 {max} 次，实际 {count} 次",
        "Element '{name}' allows at most {max} occurrence(s), found {count}",
    ),
    "VAL-1004": Message(
        "structure", "元素 '{name}' 应为 JSON 数组", "Element '{name}' must be a JSON array"
    ),
    "VAL-1005": Message(
        "structure", "元素 '{name}' 不应为 JSON 数组", "Element '{name}' must not be a JSON array"
    ),
    "VAL-1006": Message(
        "structure",
        "类型 {type} 的 JSON 形式错误：应为 {expected}",
        "Wrong JSON form for type {type}: expected {expected}",
    ),
    "VAL-1007": Message(
        "value", "值 '{value}' 不是有效的 {type}", "Value '{value}' is not a valid {type}"
    ),
    "VAL-1008": Message(
        "value",
        "日期/时间 '{value}' 不是真实存在的日历日期或时间",
        "Date/time '{value}' is not a real calendar date or time",
    ),
    "VAL-1009": Message(
        "value", "整数 {value} 超出 {type} 的取值范围", "Integer {value} is out of range for {type}"
    ),
    "VAL-1010": Message(
        "value",
        "带时间的值 '{value}' 必须包含时区",
        "Value '{value}' with a time must have a time zone",
    ),
    "VAL-1011": Message(
        "structure",
        "不允许空的字符串、数组或对象",
        "Empty strings, arrays and objects are not allowed",
    ),
    "VAL-1012": Message("structure", "未知的资源类型 '{type}'", "Unknown resource type '{type}'"),
    "VAL-1013": Message(
        "structure",
        "选择类型元素 '{name}' 只能出现一种类型，实际出现 {types}",
        "Choice element '{name}' may have one type only, found {types}",
    ),
    "VAL-1014": Message(
        "structure", "元素 '{name}' 不允许类型 {type}", "Type {type} is not allowed for '{name}'"
    ),
    "VAL-1015": Message(
        "value",
        "字符串长度 {length} 超过最大长度 {max}",
        "String length {length} exceeds maxLength {max}",
    ),
    "VAL-1016": Message(
        "structure",
        "数组中的 null 必须与 '_' 扩展数组对应",
        "A null in an array must be matched by an entry in the '_' array",
    ),
    "VAL-1017": Message(
        "structure",
        "null 不是值（去掉该属性）；null 只能在数组中与 '_' 扩展数组对应",
        "null is not a value (leave the property out); null only pads arrays aligned with "
        "their '_' array",
    ),
    "VAL-1018": Message(
        "structure",
        "'{name}' 与 '_{name}' 的条目数必须相同",
        "'{name}' and '_{name}' must have the same number of items",
    ),
    "VAL-1019": Message(
        "value",
        "字符串不得包含制表符、回车、换行以外的控制字符",
        "Control characters other than tab, CR and LF are not allowed in strings",
    ),
    # fixed and pattern values
    "VAL-1020": Message(
        "value", "值必须等于固定值 {expected}", "Value must be the fixed value {expected}"
    ),
    "VAL-1021": Message(
        "value", "值必须符合模式 {expected}", "Value must match the pattern {expected}"
    ),
    # slicing
    "VAL-1030": Message(
        "structure",
        "切片 '{slice}' 最少出现 {min} 次，实际 {count} 次",
        "Slice '{slice}' requires at least {min} occurrence(s), found {count}",
    ),
    "VAL-1031": Message(
        "structure",
        "切片 '{slice}' 最多出现 {max} 次，实际 {count} 次",
        "Slice '{slice}' allows at most {max} occurrence(s), found {count}",
    ),
    "VAL-1032": Message(
        "structure",
        "该条目不匹配封闭切片 '{name}' 的任何切片",
        "The item matches no slice of the closed slicing on '{name}'",
    ),
    # terminology
    "VAL-1040": Message(
        "code-invalid",
        "代码 {code} 不在必需绑定的值集 {valueset} 中",
        "Code {code} is not in the value set {valueset} (required binding)",
    ),
    "VAL-1041": Message(
        "code-invalid",
        "代码 {code} 不在可扩展绑定的值集 {valueset} 中",
        "Code {code} is not in the value set {valueset} (extensible binding)",
    ),
    "VAL-1042": Message(
        "code-invalid",
        "必需绑定 {valueset} 要求提供代码，但只有文本",
        "The required binding to {valueset} needs a code, found none",
    ),
    "VAL-1043": Message(
        "code-invalid",
        "代码系统 {system} 中不存在代码 '{code}'",
        "Code '{code}' does not exist in code system {system}",
    ),
    # invariants
    "VAL-1050": Message(
        "invariant", "约束 {key} 未满足：{human_zh}", "Constraint {key} failed: {human}"
    ),
    "VAL-1051": Message(
        "processing",
        "约束 {key} 无法求值：{detail}",
        "Constraint {key} could not be evaluated: {detail}",
    ),
    # references
    "VAL-1060": Message(
        "structure",
        "引用目标类型 {type} 不允许，允许：{allowed}",
        "Reference to type {type} is not allowed here; allowed: {allowed}",
    ),
    "VAL-1061": Message(
        "structure",
        "内部引用 '{reference}' 找不到对应的 contained 资源",
        "Local reference '{reference}' matches no contained resource",
    ),
    "VAL-1062": Message(
        "structure",
        "Reference.type '{declared}' 与引用的类型 {type} 不一致",
        "Reference.type '{declared}' does not match the referenced type {type}",
    ),
    # profiles and extensions
    "VAL-1070": Message(
        "not-supported",
        "未知的 profile {profile}，未按其校验",
        "Unknown profile {profile}: not validated against it",
    ),
    "VAL-1071": Message(
        "invalid",
        "profile {profile} 适用于 {expected}，不适用于 {type}",
        "Profile {profile} is for {expected}, not {type}",
    ),
    "VAL-1072": Message(
        "structure",
        "本命名空间内未定义的扩展 {url}",
        "Extension {url} is not defined in our namespace",
    ),
    "VAL-1073": Message(
        "structure",
        "找不到扩展 {url} 的定义，仅校验了其结构",
        "The extension {url} could not be found: only its structure was checked",
    ),
    "VAL-1075": Message(
        "structure",
        "扩展 {url} 不是 R4 核心扩展（核心命名空间中没有这个定义）",
        "The extension {url} is not an R4 core extension (the core namespace has no such one)",
    ),
    "VAL-1074": Message(
        "business-rule", "无法识别的修饰扩展 {url}", "Modifier extension {url} is not understood"
    ),
    # national identifiers (gateway/validation/national_ids.py)
    "VAL-1090": Message(
        "value",
        "居民身份证号码格式或 GB 11643 校验码错误",
        "The resident ID number fails its format or GB 11643 check character",
    ),
    "VAL-1091": Message(
        "value",
        "统一社会信用代码格式或 GB 32100 校验码错误",
        "The unified social credit code fails its format or GB 32100 check character",
    ),
    "VAL-1092": Message(
        "business-rule",
        "居民身份证号码中的出生日期与 birthDate {birth_date} 不一致",
        "The birth date in the resident ID number disagrees with birthDate {birth_date}",
    ),
    "VAL-1093": Message(
        "business-rule",
        "居民身份证号码的性别位与 gender {gender} 不一致",
        "The sex digit of the resident ID number disagrees with gender {gender}",
    ),
    "VAL-1094": Message(
        "value",
        "居民身份证号码的校验码为小写 x，GB 11643 规定为大写 X",
        "The resident ID number ends in a lower-case x; GB 11643 writes the check character X",
    ),
    # bundles (gateway/validation/bundle_rules.py)
    "VAL-1100": Message(
        "invalid",
        "条目有资源 id 时 fullUrl 必须是绝对 URL（而不是 '{url}'）",
        "The fullUrl must be an absolute URL when the entry's resource has an id (not '{url}')",
    ),
    "VAL-1107": Message(
        "invalid",
        "fullUrl '{url}' 是 RESTful 地址，必须以资源的类型和 id（{id}）结尾",
        "The fullUrl '{url}' is a RESTful URL: it must end with the resource's type and id ({id})",
    ),
    "VAL-1101": Message(
        "invalid",
        "链接关系 '{relation}' 只能出现一次",
        "The link relation '{relation}' may occur only once",
    ),
    "VAL-1102": Message(
        "invalid",
        "引用 '{reference}' 在 Bundle 中匹配到 {count} 个条目，无法确定指向哪一个",
        "The reference '{reference}' matches {count} entries of the bundle: it is ambiguous",
    ),
    "VAL-1103": Message(
        "not-found",
        "Bundle 中找不到引用 '{reference}' 指定的版本",
        "No entry of the bundle has the version the reference '{reference}' names",
    ),
    "VAL-1104": Message(
        "required", "检索结果中的资源必须有 id", "A search result (mode match) must have an id"
    ),
    "VAL-1105": Message(
        "invalid",
        "search.mode 为 outcome 的条目必须是 OperationOutcome，而不是 {type}",
        "An entry with search mode 'outcome' must be an OperationOutcome, not {type}",
    ),
    "VAL-1106": Message(
        "invalid",
        "检索结果的类型 {type} 与 self 链接检索的类型 {searched} 不符",
        "A search match of type {type} in a search of {searched}",
    ),
    "VAL-1113": Message(
        "security",
        "字符串中含有类似 HTML 标签的内容；未经处理直接显示为 HTML 有安全风险",
        "The string contains text that looks like HTML tags: a security risk if it is "
        "rendered as HTML without processing",
    ),
    "VAL-1114": Message(
        "too-costly",
        "错误超过 {max} 个，校验到此为止，其余未报告",
        "More than {max} errors: validation stopped there, the rest are not reported",
    ),
    "VAL-1115": Message(
        "informational",
        "另有 {count} 条警告或提示未列出",
        "{count} more warnings or notes are not listed",
    ),
    # data-type rules (gateway/validation/datatype_rules.py)
    "VAL-1110": Message(
        "value",
        "Attachment.size 为 {size}，但 data 实际为 {actual} 字节",
        "Attachment.size is {size} but the data is {actual} bytes",
    ),
    "VAL-1111": Message(
        "value",
        "Attachment.hash 与 data 的 SHA-1 不符",
        "Attachment.hash is not the SHA-1 of the data",
    ),
    "VAL-1112": Message(
        "value",
        "Coding.system 必须是绝对 URI（而不是 '{system}'）",
        "Coding.system must be an absolute URI (not '{system}')",
    ),
    # operation level
    "VAL-1081": Message(
        "required", "update 模式下资源必须有 id", "A resource must have an id in update mode"
    ),
    "VAL-1082": Message("informational", "校验通过，没有问题", "Validation passed with no issues"),
    "VAL-1083": Message(
        "invalid", "$validate 参数无效：{detail}", "Invalid $validate parameters: {detail}"
    ),
}


def render(message_id: str, **fields: object) -> tuple[str, str, str]:
    """(issue type, Chinese text, English text) for a message code."""
    msg = MESSAGES[message_id]
    fields.setdefault("human_zh", fields.get("human", ""))
    return msg.issue_type, msg.zh.format(**fields), msg.en.format(**fields)


# terminology and conformance operations
MESSAGES.update(
    {
        "VAL-2001": Message("not-found", "未知的值集 {valueset}", "Unknown value set {valueset}"),
        "VAL-2002": Message(
            "too-costly",
            "值集 {valueset} 无法在本地展开（依赖外部术语或不支持的过滤器）",
            "Value set {valueset} cannot be expanded locally (external terminology or filter)",
        ),
        "VAL-2003": Message("not-found", "未知的代码系统 {system}", "Unknown code system {system}"),
        "VAL-2004": Message(
            "not-found",
            "代码系统 {system} 中找不到代码 '{code}'",
            "Code '{code}' not found in code system {system}",
        ),
        "VAL-2005": Message("required", "缺少参数：{detail}", "Missing parameter: {detail}"),
        "VAL-2006": Message(
            "code-invalid",
            "代码 {code} 不在值集 {valueset} 中",
            "Code {code} is not in value set {valueset}",
        ),
        "VAL-2007": Message(
            "code-invalid",
            "代码 '{code}' 的显示名 '{display}' 不正确，应为 '{expected}'",
            "Display '{display}' for code '{code}' is wrong; expected '{expected}'",
        ),
    }
)
