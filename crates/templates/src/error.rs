use herald_domain::Channel;

/// Why a template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template {0}")]
    UnknownTemplate(String),
    #[error("template {template} has no {channel} version")]
    ChannelNotOffered { template: String, channel: Channel },
    /// `part` is the part file's name without `.hbs`: `email.subject`, or
    /// `email.subject.fr` for a locale variant.
    #[error("cannot render {part} of template {template}: {message}")]
    Render {
        template: String,
        part: String,
        message: String,
    },
    /// A digest was asked of a template that ships no `digest.*.hbs` files.
    #[error("template {template} has no digest variant")]
    NoDigestVariant { template: String },
    /// A digest was asked for with no items: there is nothing to tell.
    #[error("cannot render a digest of template {template} without items")]
    EmptyDigest { template: String },
    /// The templates folder is broken. `path` names the offending file or
    /// folder; this is an operator's problem, found at startup.
    #[error("{path}: {message}")]
    Load { path: String, message: String },
}

impl TemplateError {
    /// True when the request is at fault (a 4xx), false when the templates
    /// folder or Herald itself is.
    ///
    /// The digest errors are not the request's fault: the router groups only
    /// notifications of a template that has a digest variant (a `digest`
    /// window requires one), and a digest is opened by its first member. A
    /// template that lost its variant in a deploy while a digest was open,
    /// or a digest of nothing, is Herald's problem, not the sender's.
    pub fn is_caller_error(&self) -> bool {
        match self {
            TemplateError::UnknownTemplate(_)
            | TemplateError::ChannelNotOffered { .. }
            | TemplateError::Render { .. } => true,
            TemplateError::NoDigestVariant { .. }
            | TemplateError::EmptyDigest { .. }
            | TemplateError::Load { .. } => false,
        }
    }
}
