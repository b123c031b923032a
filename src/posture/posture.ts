// ACIDex posture: the identity values the client reports to the headend, in the XML
// `<version>` and `<device-id>` elements and in the X-AnyConnect-Identifier-* headers.

export interface Posture {
  /** Client version, e.g. "v0.1.0"; sent as <version> and ClientVersion. */
  clientVersion: string;
  /** Platform id: "linux-64" on Linux hosts, "android" on Android. */
  platform: string;
  /** OS version, e.g. the kernel release. */
  platformVersion: string;
  /** Device type or model. */
  deviceType: string;
  /** Upper-case hex SHA-256 of the platform id (/etc/machine-id or the Android ID). */
  deviceUniqueId: string;
}
