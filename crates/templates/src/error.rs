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
    /// The templates folder is broken. `path` names the offending file or
    /// folder; this is an operator's problem, found at startup.
    #[error("{path}: {message}")]
    Load { path: String, message: String },
}

impl TemplateError {
    /// True when the request is at fault (a 4xx), false when the templates
    /// folder is.
    pub fn is_caller_error(&self) -> bool {
        match self {
            TemplateError::UnknownTemplate(_)
            | TemplateError::ChannelNotOffered { .. }
            | TemplateError::Render { .. } => true,
            TemplateError::Load { .. } => false,
        }
    }
}
