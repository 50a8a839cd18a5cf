"""The Chinese story grammar (中文故事): word classes and sentence templates.

The same story parts and slots as english.py (see grammar.py for the slot syntax), with
Chinese words. Chinese has no spaces: sentences end with 。 or ！ and follow each other
directly. Animals are counted with 只 and things with 个, so every animal and thing here
takes that measure word. As in English, most sentences about the hero come in twins, one
naming the hero and one with the pronoun 他/她.
"""

LANGUAGE = "zh"
SENTENCE_SEPARATOR = ""

# The words that depend on a character's gender. Pronouns always refer to the hero.
CHARACTERS = {
    "girl": {"child": "女孩", "he": "她"},
    "boy": {"child": "男孩", "he": "他"},
}

# Names by role and gender. Heroes and friends never share a name.
NAMES = {
    "hero": {
        "girl": ("小红", "小美", "小雪", "小兰", "朵朵", "丽丽", "甜甜", "欢欢", "玲玲", "婷婷",
                 "月月", "芳芳"),
        "boy": ("小明", "小刚", "小军", "小虎", "东东", "亮亮", "豆豆", "浩浩", "阳阳", "天天",
                "壮壮", "强强"),
    },
    "friend": {
        "girl": ("圆圆", "静静", "果果", "莉莉", "佳佳", "琪琪", "菲菲", "萌萌"),
        "boy": ("小宇", "小杰", "冬冬", "磊磊", "峰峰", "凯凯", "航航", "帅帅"),
    },
}

WORDS = {
    "trait": ("勇敢", "善良", "聪明", "好奇", "细心", "可爱", "活泼", "安静", "有礼貌",
              "热心", "开朗", "害羞", "耐心", "友好"),
    "activity": ("唱歌", "跳舞", "画画", "看书", "游泳", "爬树", "放风筝", "跳绳", "做蛋糕",
                 "种花", "讲故事", "数星星", "吹口哨"),
    "color": ("红色", "蓝色", "绿色", "黄色", "粉色", "紫色", "白色", "棕色", "金色", "银色"),
    "size": ("小", "大"),
    "animal": ("鸟", "猫", "狗", "兔子", "鸭子", "青蛙", "狐狸", "老鼠", "乌龟", "松鼠",
               "山羊", "刺猬", "猴子", "鹿"),
    "thing": ("球", "风筝", "盒子", "帽子", "杯子", "铃铛", "娃娃", "贝壳", "气球", "篮子",
              "风车", "哨子"),
    "place": ("公园", "花园", "森林", "草地", "村子", "果园", "树林", "山谷", "田野", "院子"),
    "spot": ("大树", "草丛", "长椅", "石头", "篱笆", "木桥"),
    "family": ("妈妈", "爸爸", "奶奶", "爷爷", "姐姐", "哥哥"),
    "time": ("有一天", "一天早上", "一天下午", "一天傍晚", "一个晴朗的早晨", "一个刮风的日子",
             "一个春天的早晨", "一个夏天的下午"),
    "food": ("饼干", "苹果", "草莓", "葡萄", "樱桃", "胡萝卜", "坚果", "李子"),
    "build": ("城堡", "高塔", "房子", "桥"),
    "material": ("沙子", "树枝", "树叶", "石块"),
    "feeling": ("高高兴兴", "开开心心", "快快乐乐"),
}

# What troubles the animal, and how the hero helps: the i-th problem goes with the i-th help.
PET_TROUBLES = (
    ("饿了", "把自己的面包分给了它"),
    ("迷路了", "帮它找到了回家的路"),
    ("很冷", "用围巾把它包了起来"),
    ("被卡住了", "轻轻地把它拉了出来"),
    ("受伤了", "给它的腿包上了柔软的布"),
    ("很孤单", "陪它玩了一整个下午"),
    ("很害怕", "轻声地安慰它"),
    ("渴了", "给它拿来了干净的水"),
)

# The parts of a story (generate.py puts them in order) and the sentences each part can use.
TEMPLATES = {
    "intro": (
        "从前，有一个名叫{hero.name}的{hero.child}。",
        "从前，有一个{hero.trait}的{hero.child}，名叫{hero.name}。",
        "从前有个{hero.child}，名字叫{hero.name}，住在一座{size}房子里。",
        "很久以前，在一个安静的村子里，住着一个名叫{hero.name}的{hero.child}。",
        "在{place.place}旁边的一座小房子里，住着一个名叫{hero.name}的{hero.child}。",
    ),
    "trait": (
        "{hero.name}很{hero.trait}，也很{hero.trait2}。",
        "{hero.he}很{hero.trait}，也很{hero.trait2}。",
        "{hero.he}非常{hero.trait}。",
        "{hero.name}非常{hero.trait}。",
        "{hero.he}最喜欢{hero.activity}。",
        "{hero.name}最喜欢{hero.activity}。",
        "每天，{hero.name}都喜欢和{family}一起{hero.activity}。",
        "大家都说{hero.name}很{hero.trait2}。",
    ),
    "start": (
        "{time}，{hero.name}去了{place.place}。",
        "{time}，{hero.name}和{family}一起去了{place.place}。",
        "{time}，天气很好，{hero.name}去{place.place}里玩。",
        "{time}，{hero.name}和{family}去{place.place}里散步。",
    ),
    "find_pet": (
        "在{place.place}里，{hero.he}看见了一只{pet.color}的小{pet.animal}。",
        "在{place.place}里，{hero.name}看见了一只{pet.color}的小{pet.animal}。",
        "在那里，{hero.name}在{spot}下面发现了一只小{pet.animal}。",
        "{hero.name}听见{spot}旁边有一只小{pet.animal}在叫。",
        "{hero.he}听见{spot}旁边有一只小{pet.animal}在叫。",
        "忽然，{hero.he}看见{spot}旁边有一只{pet.color}的小{pet.animal}。",
    ),
    "pet_trouble": (
        "小{pet.animal}{pet.problem}。",
        "{hero.name}发现小{pet.animal}{pet.problem}。",
        "{hero.he}发现小{pet.animal}{pet.problem}。",
        "原来，小{pet.animal}{pet.problem}。",
    ),
    "help_pet": (
        "{hero.name}{pet.help}。",
        "{hero.he}{pet.help}。",
        "{hero.name}想帮助小{pet.animal}，所以{hero.he}{pet.help}。",
        "{hero.he}马上{pet.help}。",
        "{hero.name}马上{pet.help}。",
    ),
    "pet_better": (
        "不久，小{pet.animal}就好多了。",
        "小{pet.animal}又高兴起来了。",
        "小{pet.animal}高兴地跳了起来，谢谢{hero.name}。",
    ),
    "pet_end": (
        "从那天起，{hero.name}和小{pet.animal}成了最好的朋友。",
        "以后每天，小{pet.animal}都来看{hero.name}。",
    ),
    "meet": (
        "在{place.place}里，{hero.he}遇到了一个名叫{friend.name}的{friend.child}。",
        "在{place.place}里，{hero.name}遇到了一个名叫{friend.name}的{friend.child}。",
        "在那里，{hero.name}认识了一个{friend.trait}的{friend.child}，名叫{friend.name}。",
        "在{place.place}里，一个名叫{friend.name}的{friend.child}向{hero.he}挥手。",
    ),
    "friend_trait": (
        "{friend.name}很{friend.trait}，喜欢{friend.activity}。",
        "{friend.name}有一个{thing.color}的{thing.thing}。",
        "{friend.name}想和{hero.name}做朋友。",
    ),
    "play": (
        "{hero.name}和{friend.name}在{place.place}里一起玩。",
        "{friend.name}教{hero.name}{friend.activity}。",
        "然后，{hero.name}教{friend.name}{hero.activity}。",
        "两个好朋友用{material}搭了一座{size}{build}。",
        "{hero.name}和{friend.name}一起分享了一些{food}。",
    ),
    "friend_end": (
        "太阳下山的时候，{hero.name}和{friend.name}说了再见。",
        "{hero.name}和{friend.name}成了好朋友。",
        "{friend.name}答应第二天再来找{hero.name}玩。",
    ),
    "has_thing": (
        "{hero.name}有一个{thing.color}的{thing.size}{thing.thing}。",
        "{hero.he}有一个{thing.color}的{thing.size}{thing.thing}。",
        "{hero.he}的{family}送给{hero.he}一个{thing.color}的{thing.thing}。",
    ),
    # From here on every sentence names the thing with its colour, as in english.py.
    "likes_thing": (
        "{hero.he}走到哪里都带着这个{thing.color}的{thing.thing}。",
        "{hero.name}走到哪里都带着这个{thing.color}的{thing.thing}。",
        "{hero.name}非常喜欢这个{thing.color}的{thing.thing}。",
        "{hero.he}非常喜欢这个{thing.color}的{thing.thing}。",
    ),
    "lose_thing": (
        "在{place.place}里，{hero.name}把{thing.color}的{thing.thing}弄丢了。",
        "可是在{place.place}里，一阵风把{hero.he}{thing.color}的{thing.thing}吹走了。",
        "{hero.he}在{place.place}里玩的时候，{thing.color}的{thing.thing}不见了。",
    ),
    "sad": (
        "{hero.name}很难过。",
        "{hero.he}很难过。",
        "{hero.he}不知道该怎么办。",
        "{hero.name}不知道该怎么办。",
    ),
    "search": (
        "{hero.he}在{spot}下面找了找，可是{thing.color}的{thing.thing}不在那里。",
        "{hero.name}在{spot}下面找了找，可是{thing.color}的{thing.thing}不在那里。",
        "{hero.name}找遍了{place.place}里的每一个角落。",
        "{hero.he}找遍了{place.place}里的每一个角落。",
        "{hero.he}请一只小{animal}帮忙。",
        "{hero.name}请一只小{animal}帮忙。",
    ),
    "find_thing": (
        "最后，{hero.he}在{spot}下面找到了{thing.color}的{thing.thing}。",
        "最后，{hero.name}在{spot}下面找到了{thing.color}的{thing.thing}。",
        "这时，一只友好的小{animal}把{thing.color}的{thing.thing}送回给了{hero.he}。",
        "终于，{hero.name}在{spot}后面看见了{thing.color}的{thing.thing}。",
    ),
    "thing_end": (
        "{hero.name}紧紧地抱着{thing.color}的{thing.thing}，开心地笑了。",
        "{hero.he}紧紧地抱着{thing.color}的{thing.thing}，开心地笑了。",
        "{hero.name}找回了{thing.color}的{thing.thing}，高兴极了。",
        "{hero.he}找回了{thing.color}的{thing.thing}，高兴极了。",
        "从那以后，{hero.he}好好地爱护着这个{thing.color}的{thing.thing}。",
    ),
    "ending": (
        "那天晚上，{hero.name}带着笑容睡着了。",
        "{hero.name}笑了。",
        "{hero.he}笑了。",
        "这真是{hero.name}最开心的一天！",
        "{hero.name}很期待第二天的到来。",
        "{hero.he}很期待第二天的到来。",
        "天黑了，{hero.name}{feeling}地回家了。",
    ),
}
