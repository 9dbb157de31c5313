//! Word lists of the rule-based extractor. All entries lower-case; lookups take a lower-cased
//! word. Kept short on purpose: they steer a heuristic, they are not a gazetteer.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The words of a whitespace-separated list.
fn set(words: &'static str) -> HashSet<&'static str> {
    words.split_whitespace().collect()
}

/// Function words and sentence openers: never an entity on their own, and dropped from the
/// start of a sentence-initial capitalised run ("When Ava Anders…" → "Ava Anders").
pub static STOP_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        a about above across after afterwards again against all almost along already also
        although always am among an and another any anyone anything are around as at be because
        been before being below beneath besides between beyond both but by can could despite did
        do does done during each either else even ever every everyone everything few finally
        first firstly for from further furthermore had has have having he hence her here hers
        herself him himself his how however i if in indeed instead into is it its itself just
        last later least less let like many may maybe meanwhile might more moreover most much
        must my neither never nevertheless next no nobody none nor not nothing now of off often
        on once one only onto or other others otherwise our ours out over overall own per
        perhaps please rather second secondly see several shall she should since so some someone
        something sometimes soon still such than that the their theirs them then there therefore
        these they third this those though through throughout thus to today together tomorrow
        too toward towards under unless unlike until up upon us very via was we well were what
        whatever when whenever where whereas whether which while who whom whose why will with
        within without would yes yesterday yet you your yours note example summary introduction
        conclusion background overview step section chapter table figure ok okay hello thanks
        dear regards today's tonight currently recently initially additionally specifically
        generally typically importantly similarly consequently accordingly ultimately eventually
        unfortunately fortunately clearly notably nonetheless likewise january february march
        april june july august september october november december monday tuesday wednesday
        thursday friday saturday sunday jan feb mar apr jun jul aug sep sept oct nov dec mon tue
        wed thu fri sat sun todo fixme tbd etc ie eg vs")
});

/// Lower-case particles inside personal names ("Ludwig van Beethoven", "Leonardo da Vinci").
pub static NAME_PARTICLES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        de del della der den van von da di du la le y bin al el ibn ten ter zu")
});

/// Lower-case words joining an institution, place or event head to its complement
/// ("University of Oslo", "Center for Climate Research", "Conference on Learning"); only
/// after a word of [`ORG_HEADS`], [`LOCATION_HEADS`] or [`EVENT_HEADS`].
pub static HEAD_CONNECTORS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        of for on de du des der für")
});

/// Titles in front of a name: removed from the name, and mark a person.
pub static HONORIFICS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        mr mrs ms miss mx dr prof professor sir dame lord lady president senator judge captain
        general minister king queen prince princess rev reverend father sister saint st
        chancellor governor mayor ceo cto cfo director chairman chairwoman sen rep gov col lt
        sgt capt mme mlle herr frau")
});

/// Last words of organisation names.
pub static ORG_SUFFIXES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        inc ltd llc llp plc gmbh ag sa sarl bv nv oy ab corp corporation company co companies
        labs lab laboratory laboratories university universität université universidad college
        institute institution foundation association society agency bank group holdings
        technologies solutions partners council committee ministry department commission academy
        school hospital clinic center centre club union federation organization organisation
        consortium alliance press publishing studios industries enterprises ventures bureau
        office board authority police army navy party church museum library observatory systems")
});

/// First words of organisation names of the form "X of Y".
pub static ORG_HEADS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        university universität université universidad bank institute department ministry museum
        college school academy society association federation council church league order office
        bureau board house court center centre journal committee foundation agency commission
        faculty division gallery library party union army navy hospital laboratory federal
        national royal coalition alliance friends sisters brothers")
});

/// First words of place names of the form "X of Y".
pub static LOCATION_HEADS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        republic kingdom state states city province county gulf bay isle isles island islands
        sea lake cape mount strait port district region principality commonwealth duchy emirate")
});

/// First words of event names of the form "X of/on Y".
pub static EVENT_HEADS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        battle treaty war conference symposium workshop festival summit siege council congress
        olympics championship day revolution")
});

/// Last words of event names.
pub static EVENT_SUFFIXES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        conference summit symposium workshop festival war olympics championship championships
        cup games expo hackathon meetup election elections revolution crisis pandemic award
        awards prize")
});

/// Last words of place names.
pub static LOCATION_SUFFIXES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        city county river mountain mountains mount lake island islands valley street avenue road
        boulevard square bay ocean sea gulf province region republic kingdom desert peninsula
        airport station harbor harbour canyon coast forest hills district village town state
        states emirates strait channel plateau falls beach cape port heights")
});

/// Verbs that follow a person's name ("Anders said").
pub static PERSON_VERBS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        said says told tells argued argues explained explains wrote writes stated states noted
        notes added adds claimed claims believes believed thinks thought recalled recalls asked
        asks answered replied replies smiled laughed born died married himself herself")
});

/// Common given names (international, with some diacritics): a capitalised run starting with
/// one is typed `person`.
pub static GIVEN_NAMES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        aaron abdul abigail adam adrian ahmed aisha alan albert alejandro alex alexander
        alexandra ali alice alicia amanda amelia amir amy ana andrea andreas andrew andré angela
        anna anne anthony antoine antonio arjun ava barbara ben benjamin bernard bob brian bruno
        camille carl carla carlos caroline catherine charles charlie charlotte chen chloe chris
        christian christina christopher claire clara claude daniel daniela david deborah diana
        diego dmitri dominic donald dorothy edward elena eli elijah elizabeth ella ellen elodie
        élodie emily emma emmanuel eric erik ethan eva fatima felix fernando françois frank
        franz fred frederick gabriel george georg gerald giovanni grace hannah hans harry helen
        helena henry hiroshi hugo ian igor ingrid irene isaac isabel isabella ivan jack jacob
        james jan jane janet jasmine jason javier jean jennifer jessica jim joan joe johann
        johannes john jonathan jordan jorge josé jose joseph joshua juan julia julian julie
        karen karl kate katherine kenji kevin klaus laura lars lea léa leo li liam linda lisa
        louis lucas lucy luis luka maria marie mario mark marta martin mary mateo matthew max
        maya mei mia michael michel miguel mohammed muhammad nadia nancy natalie nathan nicholas
        nicolas nina noah nora olga oliver olivia omar oscar pablo patricia patrick paul paula
        pedro peter philip pierre priya rachel rafael rahul raj rebecca richard robert roberto
        rosa ryan sakura samuel sara sarah sebastian sergei sofia sophia sophie stefan stephen
        steven susan tariq thomas tim timothy tom yuki victor victoria vincent wang wei william
        xavier yusuf zhang zoe zoé søren björn zoë chloé renée andrés inés jürgen jörg mónica
        sébastien hélène agnès noémie zara yara lena kai leila layla hana aiko ming ravi anil
        sanjay amara kofi ama chidi ngozi tunde olu mateus joão thiago lucía camila valentina
        martina giulia francesca luca marco matteo nikolai anastasia katarzyna piotr tomasz ines
        farah reza darius omid mehmet emre elif ayşe ahmet hamza youssef karim salma nour leon
        finn jonas emil ida freya astrid nils sven mikkel aino eero noa yosef tamar")
});

/// Abbreviations whose period does not end a sentence.
pub static ABBREVIATIONS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    set("\
        mr mrs ms dr prof st jr sr inc ltd co corp vs etc e.g i.e eg ie no fig approx dept univ
        mt gen col lt sgt capt rev sen rep gov ave blvd vol pp ed eds al cf est jan feb mar apr
        jun jul aug sep sept oct nov dec mme mlle u.s u.k p op ch sec")
});
