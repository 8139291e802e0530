//! A client that writes SMTP by hand, for what a well-behaved client never
//! sends and for checking each reply.

use herald_standins::smtp::SmtpSink;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct RawClient {
    pub conn: BufReader<TcpStream>,
}

impl RawClient {
    pub async fn connect(sink: &SmtpSink) -> (RawClient, String) {
        let mut client = RawClient {
            conn: BufReader::new(TcpStream::connect(sink.addr()).await.unwrap()),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Reads one reply, following `250-` continuation lines to the last one.
    pub async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            self.conn.read_line(&mut line).await.unwrap();
            assert!(line.ends_with("\r\n"), "reply line {line:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.conn.get_mut().write_all(bytes).await.unwrap();
    }

    pub async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}
