//! Turning a rendered e-mail into an RFC 5322 message.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::{Outbound, ProviderError, Recipient};
use herald_templates::Rendered;

/// Who e-mail comes from.
#[derive(Debug, Clone)]
pub struct EmailIdentity {
    pub from: Mailbox,
}

impl EmailIdentity {
    /// Parses `Name <address>` or a bare address.
    pub fn parse(from: &str) -> Result<Self, ProviderError> {
        from.parse::<Mailbox>()
            .map(|from| EmailIdentity { from })
            .map_err(|e| ProviderError::permanent(format!("invalid sender address {from:?}: {e}")))
    }

    /// The `Message-ID` Herald gives a delivery: stable, so a resend is
    /// recognisable and bounces can be matched to it.
    pub fn message_id(&self, outbound: &Outbound) -> String {
        format!("<{}@{}>", outbound.delivery_id, self.from.email.domain())
    }
}

/// Builds the message: text and HTML as `multipart/alternative` when both
/// exist, with Herald's delivery id in a header.
pub fn build_email(
    identity: &EmailIdentity,
    outbound: &Outbound,
) -> Result<Message, ProviderError> {
    let Recipient::Email { address, name } = &outbound.to else {
        return Err(ProviderError::Unsupported {
            provider: "email",
            what: format!("{:?}", outbound.channel),
        });
    };
    let Rendered::Email {
        subject,
        html,
        text,
    } = &outbound.content
    else {
        return Err(ProviderError::Unsupported {
            provider: "email",
            what: "non-email content".into(),
        });
    };
    let to = Mailbox::new(
        name.clone(),
        address
            .as_str()
            .parse()
            .map_err(|e| ProviderError::permanent(format!("invalid recipient address: {e}")))?,
    );
    let builder = Message::builder()
        .from(identity.from.clone())
        .to(to)
        .subject(subject.clone())
        .message_id(Some(identity.message_id(outbound)))
        .date_now();
    let mut message = match (text, html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text.clone())),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
        (None, None) => {
            return Err(ProviderError::permanent(
                "the e-mail has neither a text nor an HTML body",
            ))
        }
    }
    .map_err(|e| ProviderError::permanent(format!("cannot build the e-mail: {e}")))?;
    message.headers_mut().insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("X-Herald-Delivery-Id"),
        outbound.delivery_id.to_string(),
    ));
    Ok(message)
}
