//! Where each channel reaches a user: the address it picks from the user's
//! profile (e-mail, phone number), their registered push devices, or their
//! in-app inbox.
//!
//! It is looked up at send time, not taken from the job: the user's details
//! may have changed since the router looked. A user with no address on this
//! channel is a permanent failure with a reason a receipt can carry.

use herald_domain::Channel;
use herald_providers::Recipient;
use herald_store::UserRecord;

use super::{ChannelWorker, WorkerError};

impl ChannelWorker {
    /// Where this channel reaches the user now; `Err` with the reason
    /// when it cannot.
    pub(super) async fn recipient(
        &self,
        user: &UserRecord,
    ) -> Result<Result<Recipient, String>, WorkerError> {
        Ok(match self.channel {
            Channel::Email => match &user.profile.email {
                Some(address) => Ok(Recipient::Email {
                    address: address.clone(),
                    name: user.profile.name.clone(),
                }),
                None => Err("no_email_address".into()),
            },
            Channel::Sms => match &user.profile.phone {
                Some(number) => Ok(Recipient::Sms {
                    number: number.clone(),
                }),
                None => Err("no_phone_number".into()),
            },
            Channel::Push => {
                let devices = self.store.devices(&user.id).await?;
                if devices.is_empty() {
                    Err("no_push_device".into())
                } else {
                    Ok(Recipient::Push { devices })
                }
            }
            Channel::InApp => Ok(Recipient::InApp {
                user_id: user.id.clone(),
            }),
        })
    }
}
