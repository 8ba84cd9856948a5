export interface KeepAlive {
}
export interface KeepAlive__Output {
}
