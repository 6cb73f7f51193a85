//! How a model's authors meant its sentence embedding: the pooling, the normalization and the
//! prompts of a sentence-transformers model (`modules.json`, `1_Pooling/config.json`,
//! `2_Normalize`, `config_sentence_transformers.json`), read at translate time
//! (`translate/sentence.rs`) and kept in the plan, so an archive carries them as it carries
//! labels. The pooling itself is [`crate::heads::pool_into`].

use crate::error::{Error, Result};

/// How a text's encoder outputs become one vector (sentence-transformers' pooling modes,
/// plus BERT's pooler and a graph's own `sentence_embedding`).
///
/// ```
/// use bert_edge::heads::Pooling;
/// assert_eq!("mean".parse::<Pooling>()?, Pooling::Mean);
/// assert_eq!("last-token".parse::<Pooling>()?, Pooling::LastToken);
/// assert_eq!(Pooling::Pooler.to_string(), "pooler");
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pooling {
    /// The `[CLS]` token's hidden state (row 0 of `last_hidden_state`).
    Cls,
    /// Mean of `last_hidden_state` over the tokens whose attention mask is 1.
    Mean,
    /// Element-wise maximum over the tokens whose attention mask is 1.
    Max,
    /// The hidden state of the last token whose attention mask is 1.
    LastToken,
    /// Mean weighted by position (1, 2, …, L), sentence-transformers' `weightedmean`.
    WeightedMean,
    /// Sum over the real tokens divided by the square root of their count.
    MeanSqrtLen,
    /// BERT's pooler output (dense + tanh over the `[CLS]` state); graphs exported without
    /// the pooler (optimum's feature-extraction) have none.
    Pooler,
    /// The graph's own `sentence_embedding` output (optimum's sentence-transformers export).
    SentenceEmbedding,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "cls" => Pooling::Cls,
            "mean" => Pooling::Mean,
            "max" => Pooling::Max,
            "lasttoken" | "last-token" | "last_token" => Pooling::LastToken,
            "weightedmean" | "weighted-mean" => Pooling::WeightedMean,
            "mean_sqrt_len_tokens" | "mean-sqrt-len" => Pooling::MeanSqrtLen,
            "pooler" => Pooling::Pooler,
            "sentence-embedding" | "sentence_embedding" => Pooling::SentenceEmbedding,
            _ => {
                return Err(Error::bad_options(format!(
                    "unknown pooling {s:?} (cls | mean | max | last-token | weighted-mean | \
                     mean-sqrt-len | pooler | sentence-embedding)"
                )))
            }
        })
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Max => "max",
            Pooling::LastToken => "last-token",
            Pooling::WeightedMean => "weighted-mean",
            Pooling::MeanSqrtLen => "mean-sqrt-len",
            Pooling::Pooler => "pooler",
            Pooling::SentenceEmbedding => "sentence-embedding",
        })
    }
}

/// A sentence-transformers model's post-processing, as its files say.
///
/// ```
/// use bert_edge::SentenceConfig;
/// let c = SentenceConfig::default();
/// assert!(c.pooling.is_none() && !c.normalize && c.include_prompt);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceConfig {
    /// `1_Pooling/config.json`'s mode (`None`: the files name no pooling).
    pub pooling: Option<Pooling>,
    /// `modules.json` lists `sentence_transformers.models.Normalize`.
    pub normalize: bool,
    /// `include_prompt` of the pooling config (default true): false leaves the prompt's tokens
    /// (and `[CLS]`) out of the pooling, as sentence-transformers does.
    pub include_prompt: bool,
    /// `prompts` of `config_sentence_transformers.json`: (name, text prepended to the input).
    pub prompts: Vec<(String, String)>,
    /// `default_prompt_name`: the prompt used when a request names none.
    pub default_prompt_name: Option<String>,
    /// `max_seq_length` of `sentence_bert_config.json`: where sentence-transformers truncates.
    pub max_seq_length: Option<usize>,
    /// Modules bert-edge does not run (e.g. `Dense`): the model's own embedding cannot be
    /// given, and [`crate::heads::Embedding::resolve`] says so unless a pooling is asked for.
    pub unsupported: Vec<String>,
    /// The files this was read from (for `info` and the start-up line).
    pub source: String,
}

impl Default for SentenceConfig {
    fn default() -> Self {
        SentenceConfig {
            pooling: None,
            normalize: false,
            include_prompt: true,
            prompts: Vec::new(),
            default_prompt_name: None,
            max_seq_length: None,
            unsupported: Vec::new(),
            source: String::new(),
        }
    }
}

impl SentenceConfig {
    /// The text of prompt `name`, or a `BadInput` error naming the prompts there are.
    ///
    /// ```
    /// use bert_edge::SentenceConfig;
    /// let c = SentenceConfig { prompts: vec![("query".into(), "query: ".into())], ..Default::default() };
    /// assert_eq!(c.prompt("query")?, "query: ");
    /// assert!(c.prompt("passage").is_err());
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn prompt(&self, name: &str) -> Result<&str> {
        self.prompts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_str())
            .ok_or_else(|| {
                let names: Vec<&str> = self.prompts.iter().map(|(n, _)| n.as_str()).collect();
                Error::input(
                    crate::error::InputKind::Unsupported,
                    format!("unknown prompt_name {name:?}: the model's prompts are {names:?}"),
                )
            })
    }

    /// As a property string: `key=hex` fields joined by `,` (hex of UTF-8: NNEF string
    /// literals do not keep every character).
    pub(crate) fn encode(&self) -> String {
        let hex = |s: &str| super::properties::to_hex(s.as_bytes());
        let mut f = vec![
            format!(
                "pooling={}",
                hex(&self.pooling.map(|p| p.to_string()).unwrap_or_default())
            ),
            format!("normalize={}", self.normalize as u8),
            format!("include_prompt={}", self.include_prompt as u8),
            format!(
                "default={}",
                hex(self.default_prompt_name.as_deref().unwrap_or(""))
            ),
            format!("source={}", hex(&self.source)),
            format!("max_seq={}", self.max_seq_length.unwrap_or(0)),
        ];
        for u in &self.unsupported {
            f.push(format!("unsupported={}", hex(u)));
        }
        for (n, p) in &self.prompts {
            f.push(format!("prompt={}:{}", hex(n), hex(p)));
        }
        f.join(",")
    }

    /// Reads what [`SentenceConfig::encode`] wrote.
    pub(crate) fn decode(s: &str) -> Result<SentenceConfig> {
        let bad = || Error::bad_model("bad sentence-transformers property in the archive");
        let unhex = |h: &str| -> Result<String> {
            super::properties::from_hex(h)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(bad)
        };
        let mut c = SentenceConfig::default();
        for field in s.split(',').filter(|f| !f.is_empty()) {
            let (k, v) = field.split_once('=').ok_or_else(bad)?;
            match k {
                "pooling" => {
                    c.pooling = Some(unhex(v)?)
                        .filter(|p| !p.is_empty())
                        .map(|p| p.parse())
                        .transpose()
                        .map_err(|_| bad())?
                }
                "normalize" => c.normalize = v == "1",
                "include_prompt" => c.include_prompt = v == "1",
                "default" => c.default_prompt_name = Some(unhex(v)?).filter(|d| !d.is_empty()),
                "source" => c.source = unhex(v)?,
                "max_seq" => {
                    c.max_seq_length = Some(v.parse().map_err(|_| bad())?).filter(|m| *m > 0)
                }
                "unsupported" => c.unsupported.push(unhex(v)?),
                "prompt" => {
                    let (n, p) = v.split_once(':').ok_or_else(bad)?;
                    c.prompts.push((unhex(n)?, unhex(p)?));
                }
                _ => return Err(bad()),
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_property_form_reads_back() {
        let c = SentenceConfig {
            pooling: Some(Pooling::WeightedMean),
            normalize: true,
            include_prompt: false,
            prompts: vec![
                (
                    "query".into(),
                    "为这个句子生成表示以用于检索相关文章：".into(),
                ),
                ("a,b=c:d".into(), "line\nbreak".into()),
            ],
            default_prompt_name: Some("query".into()),
            max_seq_length: Some(256),
            unsupported: vec!["sentence_transformers.models.Dense".into()],
            source: "dir/modules.json".into(),
        };
        assert_eq!(SentenceConfig::decode(&c.encode()).unwrap(), c);
        let d = SentenceConfig::default();
        assert_eq!(SentenceConfig::decode(&d.encode()).unwrap(), d);
        assert!(SentenceConfig::decode("pooling=zz").is_err());
    }
}
